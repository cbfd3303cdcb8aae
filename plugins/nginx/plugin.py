"""The nginx backend's hook implementations (entry point ``nginx`` in ``polyingress.backends``)."""

from __future__ import annotations

import argparse
import logging
import shutil

from polyingress.core import (
    BackendInfo,
    RenderedConfig,
    RenderedFile,
    RouteModel,
    RunSettings,
    backend_plugin,
    fallback_certificate,
    port_number,
    positive_number,
)

from .apply import NginxBackend, NginxOptions, lua_seed
from .gateway import GATEWAY_FEATURES
from .lua_support import detect_lua, lua_render
from .process import nginx_version
from .render import FALLBACK_CRT, LUA_SEED, RenderOptions, render
from .settings import applied_settings

__all__ = ["add_options", "create", "hooks", "info", "options_from", "render_config"]

log = logging.getLogger("polyingress.nginx")
DEFAULTS = NginxOptions()
_FALLBACK_PLACEHOLDER = "# self-signed fallback certificate, made when nginx starts\n"
# What `polyingress render` shows instead of the per-run channel token.
TOKEN_PLACEHOLDER = "per-run-token-made-at-start"


def add_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("nginx backend")
    g.add_argument(
        "--nginx-binary", default=DEFAULTS.binary, metavar="PATH", help="nginx executable"
    )
    g.add_argument(
        "--nginx-status-port",
        type=port_number,
        default=DEFAULTS.status_port,
        metavar="P",
        help="loopback port of nginx's internal status server (default 0: a free port)",
    )
    g.add_argument(
        "--nginx-reload-timeout",
        type=positive_number,
        default=DEFAULTS.reload_timeout,
        metavar="S",
        help="seconds a reload may take before it counts as failed (default 60)",
    )
    g.add_argument(
        "--nginx-lua",
        choices=("auto", "on", "off"),
        default=DEFAULTS.lua,
        help="Lua balancer: endpoint changes without a reload (default auto: when the Lua "
        "module, lua-resty-core and lua-cjson are installed; on: refuse to run without it)",
    )
    g.add_argument(
        "--nginx-stop-timeout",
        type=positive_number,
        default=DEFAULTS.stop_timeout,
        metavar="S",
        help="seconds to wait for a graceful stop before killing nginx (default 15)",
    )


def options_from(settings: RunSettings) -> NginxOptions:
    ns = settings.options
    return NginxOptions(
        binary=getattr(ns, "nginx_binary", DEFAULTS.binary),
        status_port=getattr(ns, "nginx_status_port", DEFAULTS.status_port),
        reload_timeout=getattr(ns, "nginx_reload_timeout", DEFAULTS.reload_timeout),
        stop_timeout=getattr(ns, "nginx_stop_timeout", DEFAULTS.stop_timeout),
        lua=getattr(ns, "nginx_lua", DEFAULTS.lua),
    )


def info() -> BackendInfo:
    binary = shutil.which(DEFAULTS.binary)
    version = (nginx_version(binary) if binary else None) or "not installed"
    if binary is None:
        upstreams = "Lua balancer: unknown (nginx not installed)"
    else:
        support = detect_lua(binary)
        upstreams = (
            "Lua balancer: endpoint changes without reload (balancer_by_lua over a "
            "lua_shared_dict, local UNIX-socket channel), upstream keepalive"
            if support.available
            else f"Lua balancer unavailable ({support.reason}): static upstreams with "
            "keepalive, a reload per endpoint change"
        )
    return BackendInfo(
        name="nginx",
        version=version,
        description="nginx with a rendered configuration, validated reloads, supervised master",
        features=(
            "reload: nginx -t on a new file, atomic swap, SIGHUP, readiness by config digest",
            "single-label wildcard hosts",
            "TLS by SNI with a fallback certificate",
            upstreams,
        ),
        settings=applied_settings(),
        gateway_features=GATEWAY_FEATURES,
    )


def create(settings: RunSettings) -> NginxBackend:
    options = options_from(settings)
    if shutil.which(options.binary) is None:
        raise RuntimeError(f"nginx backend: {options.binary!r} not found")
    return NginxBackend(settings, options)


def render_config(settings: RunSettings, model: RouteModel) -> RenderedConfig:
    """nginx.conf, the certificates, and placeholders for keys, the fallback certificate and
    the channel token (made anew by each process), so equal models give byte-identical output.
    Lua mode as ``run`` would choose it (``--nginx-lua``, what is installed). ``written``: the
    same with the keys, this process's fallback certificate and, in Lua mode, the endpoint
    seed (the token stays a placeholder: each ``run`` makes its own)."""
    options = options_from(settings)
    lua = None
    if shutil.which(options.binary) is not None:
        prefix = settings.workdir.resolve()
        lua, _state = lua_render(
            options.lua, options.binary, prefix, token=TOKEN_PLACEHOLDER, unavailable_port=0
        )
    config = render(
        model,
        RenderOptions(
            bind=settings.bind,
            http_port=settings.http_port,
            https_port=settings.https_port,
            redirect_https_port=settings.public_https_port,
            status_port=options.status_port,
            lua=lua,
        ),
        fallback_certificate(),
    )
    files: list[tuple[str, str]] = [("conf/nginx.conf", config.text)]
    written = [RenderedFile(name="conf/nginx.conf", text=config.text, mode=0o600)]
    if lua is not None:
        written.append(RenderedFile(name=LUA_SEED, text=lua_seed(model), mode=0o600))
    for pair in config.key_pairs:
        written.append(RenderedFile(name=f"conf/{pair.crt}", text=pair.cert_pem, mode=0o644))
        written.append(RenderedFile(name=f"conf/{pair.key}", text=pair.key_pem, mode=0o600))
        if pair.crt == FALLBACK_CRT:
            files.append(
                (f"conf/{pair.crt}", "# self-signed fallback certificate, made at start\n")
            )
        else:
            files.append((f"conf/{pair.crt}", pair.cert_pem))
        owner = " ".join(str(r) for r in pair.refs) or "the fallback certificate"
        files.append((f"conf/{pair.key}", f"# private key of {owner}: not shown (mode 0600)\n"))
    for name, text in config.auth_files:
        written.append(RenderedFile(name=f"conf/{name}", text=text, mode=0o600))
        files.append((f"conf/{name}", "# basic authentication users: not shown (mode 0600)\n"))
    return RenderedConfig(files=tuple(files), written=tuple(written))


# Every hook of the backend, from its class and the functions above (polyingress.core.kit).
hooks = backend_plugin(
    info=info,
    create=create,
    render=render_config,
    add_options=add_options,
    push_endpoints=True,  # NginxBackend.push_endpoints: endpoint changes during a reload
)

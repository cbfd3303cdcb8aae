"""plugins/traefik/plugin.py: the hooks, external mode, and managed mode with a fake Traefik."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pluggy
import pytest
import yaml
from livekit import wait_until
from traefik_oracle import Request, route

from polyingress.core import (
    ApplyError,
    Backend,
    Endpoint,
    ObjectRef,
    PathType,
    ReloadReason,
    Route,
    RouteModel,
    RunSettings,
    TLSBinding,
    VirtualHost,
    diff,
)
from polyingress.core import hookspecs as core_hookspecs
from polyingress.plugins.traefik import plugin
from polyingress.plugins.traefik.filters import MODULE, PLUGIN, plugin_files
from polyingress.plugins.traefik.plugin import TraefikBackend, static_config
from polyingress.plugins.traefik.render import MIDDLEWARE_REDIRECT, SERVICE_UNAVAILABLE
from polyingress.testing.live import free_port

REF = ObjectRef(kind="Ingress", namespace="ns", name="ing")


def model(port: int = 8080, tls: bool = False) -> RouteModel:
    return RouteModel(
        vhosts=(
            VirtualHost(
                host="a.example.com",
                routes=(
                    Route(path="/", path_type=PathType.PREFIX, backend="ns__s__80", source=REF),
                ),
                tls=TLSBinding(certificate=None, source=REF) if tls else None,
            ),
        ),
        backends=(
            Backend(
                name="ns__s__80",
                namespace="ns",
                service="s",
                port="80",
                endpoints=(Endpoint(address="10.0.0.1", port=port),),
            ),
        ),
    )


def settings(
    tmp_path: Path,
    binary: str | None = None,
    redirect_listen: str | None = None,
) -> RunSettings:
    return RunSettings(
        backend="traefik",
        bind="127.0.0.1",
        http_port=free_port(),
        https_port=free_port(),
        workdir=tmp_path / "work",
        options=argparse.Namespace(
            traefik_binary=binary,
            traefik_https_redirect_port=None,
            traefik_redirect_listen=redirect_listen,
        ),
    )


@pytest.fixture
def no_traefik_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    # setup.sh installs Traefik beside this Python, where find_traefik looks first.
    monkeypatch.setattr(plugin, "find_traefik", lambda: None)


def test_hooks_match_the_specs() -> None:
    pm = pluggy.PluginManager("polyingress")
    pm.add_hookspecs(core_hookspecs)
    pm.register(plugin.hooks, name="traefik")
    pm.check_pending()
    implemented = {name for name in dir(plugin.hooks) if name.startswith("polyingress_")}
    assert implemented == {
        "polyingress_add_options",
        "polyingress_add_commands",
        "polyingress_backend_info",
        "polyingress_create_backend",
        "polyingress_start",
        "polyingress_apply",
        "polyingress_supervise",
        "polyingress_health",
        "polyingress_stop",
        "polyingress_render",
    }
    info = pm.hook.polyingress_backend_info()
    assert info.name == "traefik"


def test_options_are_added_and_parsed() -> None:
    parser = argparse.ArgumentParser()
    plugin.hooks.polyingress_add_options(parser)
    args = parser.parse_args(
        ["--traefik-binary", "/opt/traefik", "--traefik-https-redirect-port", "443"]
    )
    assert (args.traefik_binary, args.traefik_https_redirect_port) == ("/opt/traefik", 443)
    assert args.traefik_redirect_listen is None


@pytest.mark.parametrize("value", ["127.0.0.1:10308", "[::1]:9000", "off"])
def test_deprecated_redirect_listen_is_still_accepted(value: str) -> None:
    """Scripts that pass it keep working for one release (it has no effect)."""
    parser = argparse.ArgumentParser()
    plugin.hooks.polyingress_add_options(parser)
    assert parser.parse_args(["--traefik-redirect-listen", value]).traefik_redirect_listen == value


def test_static_config_watches_the_dynamic_directory(tmp_path: Path) -> None:
    text = static_config(8080, 8443, tmp_path / "w", "0.0.0.0")
    config = yaml.safe_load(text)
    assert {name: ep["address"] for name, ep in config["entryPoints"].items()} == {
        "web": "0.0.0.0:8080",
        "websecure": "0.0.0.0:8443",
    }
    assert config["providers"]["file"] == {
        "directory": str(tmp_path / "w" / "dynamic"),
        "watch": True,
    }
    # Traefik's default of 2s held every change for two seconds before building it.
    assert config["providers"]["providersThrottleDuration"] == "0s"
    v6 = yaml.safe_load(static_config(80, 443, "rel", "::"))
    assert v6["entryPoints"]["web"]["address"] == "[::]:80"
    assert Path(v6["providers"]["file"]["directory"]).is_absolute()


def test_render_hook_hides_private_keys(tmp_path: Path) -> None:
    rendered = plugin.hooks.polyingress_render(settings(tmp_path), model())
    names = [name for name, _text in rendered.files]
    # One dynamic file: the probe router is in it (Traefik builds each change once).
    assert names[:2] == ["traefik.yml", "dynamic/polyingress.yaml"]
    assert not [n for n in names if n.startswith("dynamic/")][1:]
    keys = [text for name, text in rendered.files if name.endswith(".key")]
    assert keys and all("PRIVATE KEY" not in text for text in keys)
    assert not (tmp_path / "work").exists(), "render must not write"


def test_external_mode_writes_and_reports_ready(tmp_path: Path, no_traefik_on_path: None) -> None:
    backend = plugin.hooks.polyingress_create_backend(settings(tmp_path))
    assert not backend.managed
    assert not plugin.hooks.polyingress_health(backend).ready
    result = plugin.hooks.polyingress_start(backend, model())
    assert not result.reloaded
    health = plugin.hooks.polyingress_health(backend)
    assert health.ready and "external mode" in health.detail
    assert backend.layout.config_path.exists()

    changed = model(port=9090)
    result = plugin.hooks.polyingress_apply(backend, changed, model(), diff(model(), changed))
    assert result.reloaded and result.reasons == (ReloadReason.ENDPOINTS_CHANGED,)
    assert "endpoints_changed=1" in result.detail
    same = plugin.hooks.polyingress_apply(backend, changed, changed, diff(model(port=1), changed))
    assert not same.reloaded and "unchanged" in same.detail

    assert plugin.hooks.polyingress_supervise(backend, changed) is None
    backend.layout.config_path.unlink()
    repaired = plugin.hooks.polyingress_supervise(backend, changed)
    assert repaired is not None and "rewritten" in repaired
    assert "9090" in backend.layout.config_path.read_text()
    plugin.hooks.polyingress_stop(backend)
    assert not plugin.hooks.polyingress_health(backend).ready


def test_static_config_loads_the_filters_plugin(tmp_path: Path) -> None:
    """polyingress's filters middleware is a local plugin: named in the static configuration,
    read by Traefik from ./plugins-local of its working directory (the workdir)."""
    config = yaml.safe_load(static_config(8080, 8443, tmp_path / "w", "0.0.0.0"))
    assert config["experimental"]["localPlugins"] == {PLUGIN: {"moduleName": "polyingress/filters"}}
    assert "run in\n# " + str(tmp_path / "w") in static_config(8080, 8443, tmp_path / "w")


def test_the_filters_plugin_is_installed_in_the_workdir(
    tmp_path: Path, no_traefik_on_path: None
) -> None:
    backend = plugin.hooks.polyingress_create_backend(settings(tmp_path))
    plugin.hooks.polyingress_start(backend, model())
    files = dict(plugin_files())
    for name, text in files.items():
        assert (backend.layout.workdir / name).read_text() == text
    manifest_name = f"plugins-local/src/{MODULE}/.traefik.yml"
    manifest = yaml.safe_load(files[manifest_name])
    assert (manifest["type"], manifest["import"]) == ("middleware", MODULE)
    source = files[f"plugins-local/src/{MODULE}/filters.go"]
    assert "package filters" in source and "func New(" in source
    assert "func CreateConfig() *Config" in source
    # render --output writes them too: a GitOps deployment has the plugin beside the config.
    rendered = plugin.hooks.polyingress_render(settings(tmp_path), model())
    assert {n: t for n, t in rendered.files if n.startswith("plugins-local/")} == files
    plugin.hooks.polyingress_stop(backend)


def test_install_plugin_command_writes_the_plugin(tmp_path: Path) -> None:
    """`polyingress traefik install-plugin --workdir DIR`, for a Traefik started elsewhere
    (the Kubernetes overlay's init container)."""
    import subprocess

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "polyingress.core.runtime.cli",
            "traefik",
            "install-plugin",
            "--workdir",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    for name, text in plugin_files():
        assert (tmp_path / "w" / name).read_text() == text


def test_given_binary_that_is_not_executable_fails_start(tmp_path: Path) -> None:
    backend = TraefikBackend(settings(tmp_path, binary=str(tmp_path / "nope")))
    with pytest.raises(ApplyError, match="not an executable"):
        backend.start(model())


FAKE_TRAEFIK = """\
#!{python}
# A stand-in for traefik: listens on the web entry point of the static configuration and
# answers the probe router of the dynamic file like Traefik would (202), everything else 404.
import http.server, pathlib, re, signal, sys

static = pathlib.Path(sys.argv[1].split("=", 1)[1]).read_text()
if "{exit_code}" != "none":
    sys.exit(int("{exit_code}"))
host, port = re.search(r'address: "?([0-9.]+):([0-9]+)', static).groups()
directory = re.search(r'directory: "?([^"\\n]+)', static).group(1)
probe = pathlib.Path(directory, "polyingress.yaml")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        text = probe.read_text() if probe.exists() else ""
        ok = self.headers.get("Host") == "polyingress-probe.invalid" and (
            "Path(`" + self.path + "`)" in text
        )
        self.send_response(202 if ok else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
http.server.HTTPServer((host, int(port)), Handler).serve_forever()
"""


def fake_traefik(tmp_path: Path, exit_code: str = "none") -> str:
    path = tmp_path / f"traefik-{exit_code}"
    path.write_text(FAKE_TRAEFIK.format(python=sys.executable, exit_code=exit_code))
    path.chmod(0o755)
    return str(path)


def test_managed_mode_starts_supervises_and_stops(tmp_path: Path) -> None:
    backend = TraefikBackend(settings(tmp_path, binary=fake_traefik(tmp_path)))
    try:
        result = backend.start(model())
        assert result.reloaded
        assert backend.proc is not None and backend.proc.poll() is None
        assert backend.health().ready
        assert backend.layout.static_path.exists()

        changed = model(port=9090)
        applied = backend.apply(changed, model(), diff(model(), changed))
        assert applied.reloaded and "not confirmed" not in applied.detail
        assert backend.supervise(changed) is None

        first_pid = backend.proc.pid
        os.kill(first_pid, signal.SIGKILL)
        backend.proc.wait()
        message = backend.supervise(changed)
        assert message is not None and "code -9; restarted" in message
        assert backend.proc.pid != first_pid and backend.health().ready

        os.kill(backend.proc.pid, signal.SIGKILL)
        backend.proc.wait()
        assert backend.supervise(changed) is None, "second crash waits for the backoff"
        assert not backend.health().ready and "restart in" in backend.health().detail
        assert backend.process is not None
        wait_until(backend.process.managed.restart_due, timeout=5)  # the back-off
        message = backend.supervise(changed)
        assert message is not None and "restarted" in message
    finally:
        proc = backend.proc
        backend.stop()
    assert proc is not None and proc.returncode == 0, "stopped by SIGTERM, exited cleanly"
    assert backend.proc is None


def test_managed_start_fails_when_traefik_exits(tmp_path: Path) -> None:
    backend = TraefikBackend(settings(tmp_path, binary=fake_traefik(tmp_path, exit_code="3")))
    with pytest.raises(ApplyError, match="exited with code 3"):
        backend.start(model())
    assert backend.proc is None


def test_health_is_callable_from_another_thread(tmp_path: Path, no_traefik_on_path: None) -> None:
    backend = TraefikBackend(settings(tmp_path))
    backend.start(model())
    seen: list[Any] = []
    try:
        thread = threading.Thread(
            target=lambda: seen.append(plugin.hooks.polyingress_health(backend))
        )
        thread.start()
        thread.join()
    finally:
        backend.stop()  # a Traefik it may have started must not outlive the test
    assert seen[0].ready


def test_static_config_command_prints_entry_points_and_file_provider(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "polyingress.core.runtime.cli",
            "traefik",
            "static-config",
            "--http-port",
            "8081",
            "--https-port",
            "8444",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cfg = yaml.safe_load(out)
    assert cfg["entryPoints"]["web"]["address"] == "0.0.0.0:8081"
    assert cfg["entryPoints"]["websecure"]["address"] == "0.0.0.0:8444"
    assert cfg["providers"]["file"] == {"directory": str(tmp_path / "dynamic"), "watch": True}


def test_ssl_redirect_is_traefiks_redirect_scheme_not_a_controller_service(
    tmp_path: Path, no_traefik_on_path: None
) -> None:
    backend = plugin.hooks.polyingress_create_backend(settings(tmp_path))
    plugin.hooks.polyingress_start(backend, model(tls=True))
    try:
        config = yaml.safe_load(backend.layout.config_path.read_text())
    finally:
        plugin.hooks.polyingress_stop(backend)
    assert set(config["http"]["services"]) == {"ns__s__80", SERVICE_UNAVAILABLE}
    https = backend.settings.https_port
    assert config["http"]["middlewares"][MIDDLEWARE_REDIRECT] == {
        "redirectScheme": {"scheme": "https", "permanent": True, "port": str(https)}
    }
    for method, status in (("GET", 301), ("HEAD", 308), ("POST", 308)):
        got = route(config, Request(host="a.example.com:80", path="/p?q=1", method=method))
        assert (got.status, got.location) == (status, f"https://a.example.com:{https}/p?q=1")


@pytest.mark.parametrize("given", [None, "127.0.0.1:10308"], ids=["absent", "given"])
def test_redirect_listen_only_warns_that_it_has_no_effect(
    tmp_path: Path, no_traefik_on_path: None, caplog: pytest.LogCaptureFixture, given: str | None
) -> None:
    base = settings(tmp_path)
    texts = []
    for flag in (None, given):
        options = argparse.Namespace(**{**vars(base.options), "traefik_redirect_listen": flag})
        backend = plugin.hooks.polyingress_create_backend(
            dataclasses.replace(base, options=options)
        )
        with caplog.at_level("WARNING", logger="polyingress.plugins.traefik.plugin"):
            plugin.hooks.polyingress_start(backend, model(tls=True))
        texts.append(backend.layout.config_path.read_text())
        plugin.hooks.polyingress_stop(backend)
    warnings = [r.getMessage() for r in caplog.records if "redirect-listen" in r.getMessage()]
    assert warnings == ([] if given is None else [plugin.REDIRECT_LISTEN_DEPRECATED])
    assert "redirect is done by Traefik itself" in plugin.REDIRECT_LISTEN_DEPRECATED
    assert texts[0] == texts[1]


@pytest.mark.parametrize("damage", ["corrupt", "remove"])
def test_supervisor_rewrites_a_damaged_certificate_file(
    tmp_path: Path, no_traefik_on_path: None, damage: str
) -> None:
    """Traefik reads the certificate files the configuration names whenever it loads it: the
    supervisor repairs them like the configuration itself."""
    backend = TraefikBackend(settings(tmp_path))
    backend.start(model())
    (key,) = backend.layout.cert_dir.glob("polyingress-fallback.*.key")
    good = key.read_text()
    if damage == "corrupt":
        key.write_text("garbage { ;\n")
    else:
        key.unlink()
    repaired = backend.supervise(model())
    assert repaired is not None and "certificate file" in repaired and "rewritten" in repaired
    assert key.read_text() == good
    assert backend.supervise(model()) is None

"""The nginx plugin's hooks: registration, options, info, and the dry-run render."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from livekit import needs
from test_nginx_render import FIXTURES, fixture_model

from polyingress.core import RunSettings
from polyingress.core.runtime.plugins import load_backend, plugin_manager
from polyingress.plugins.nginx import plugin

LIFECYCLE = [
    "polyingress_add_options",
    "polyingress_backend_info",
    "polyingress_create_backend",
    "polyingress_start",
    "polyingress_apply",
    "polyingress_supervise",
    "polyingress_health",
    "polyingress_stop",
    "polyingress_render",
]


def test_entry_point_loads_the_plugin_and_every_lifecycle_hook_is_implemented() -> None:
    _info, obj = load_backend("nginx")
    assert obj is plugin.hooks
    pm = plugin_manager(("nginx", obj))
    for name in LIFECYCLE:
        impls = getattr(pm.hook, name).get_hookimpls()
        assert [i.plugin_name for i in impls] == ["nginx"], name


def test_options_are_prefixed_and_parsed() -> None:
    parser = argparse.ArgumentParser()
    plugin.hooks.polyingress_add_options(parser=parser)
    ns = parser.parse_args(
        ["--nginx-binary", "/opt/nginx", "--nginx-status-port", "1234", "--nginx-stop-timeout", "3"]
    )
    options = plugin.options_from(RunSettings(backend="nginx", options=ns))
    assert (options.binary, options.status_port, options.stop_timeout) == ("/opt/nginx", 1234, 3.0)
    assert options.reload_timeout == 60.0
    for bad in (["--nginx-status-port", "70000"], ["--nginx-reload-timeout", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    actions = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert all(s.startswith("--nginx-") for a in actions for s in a.option_strings)


def test_create_backend_refuses_a_missing_binary(tmp_path: Path) -> None:
    ns = argparse.Namespace(nginx_binary=str(tmp_path / "no-nginx"))
    with pytest.raises(RuntimeError, match="not found"):
        plugin.hooks.polyingress_create_backend(
            settings=RunSettings(backend="nginx", workdir=tmp_path, options=ns)
        )


@needs("nginx")
def test_backend_info_reports_the_nginx_version() -> None:
    info = plugin.hooks.polyingress_backend_info()
    assert info.name == "nginx"
    assert info.version[0].isdigit(), info.version
    assert any("reload" in f for f in info.features)


def test_render_hook_shows_no_key_material() -> None:
    settings = RunSettings(backend="nginx", options=argparse.Namespace())
    rendered = plugin.hooks.polyingress_render(settings=settings, model=fixture_model("cafe"))
    names = [name for name, _text in rendered.files]
    assert names[0] == "conf/nginx.conf"
    assert "conf/certs/polyingress-fallback.key" in names
    text = rendered.text()
    assert "PRIVATE KEY" not in text
    assert "BEGIN CERTIFICATE" in text  # the Secret's certificate is public
    assert "private key of Ingress default/cafe-ingress Secret default/cafe-secret" in text
    assert 'listen "127.0.0.1:0";' in text  # status port chosen at start


def test_cli_render_is_byte_identical_across_processes() -> None:
    command = [
        sys.executable,
        "-m",
        "polyingress.core.runtime.cli",
        "render",
        "--backend",
        "nginx",
        "--manifests",
        str(FIXTURES),
        "--configmap",
        "kube-system/polyingress",
        "--watch-ingress-without-class",
    ]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    second = subprocess.run(command, capture_output=True, text=True, check=True)
    assert first.stdout == second.stdout
    assert "PRIVATE KEY" not in first.stdout
    assert "data['server-snippet']: not a setting" in first.stderr

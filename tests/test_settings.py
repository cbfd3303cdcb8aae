"""The ConfigMap's proxy-wide settings: one typed allow-list in the core
(core/pipeline/settings.py), parsed once, formatted by each backend; the README's table is
generated from it.

* the allow-list itself: every key typed, documented and defaulted once;
* one value, parsed once, reaches the configuration of all three proxies (``polyingress render``);
* an invalid value is a problem naming the key, the default is used and the rest renders;
* live: ``proxy-read-timeout`` really bounds the wait for a slow backend (504) on nginx, HAProxy
  and Traefik, and a changed ConfigMap is applied while running.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import UPDATE_GOLDEN
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import backend_param

from polyingress.core import (
    SETTINGS,
    BackendInfo,
    GlobalSettings,
    SettingsSupport,
    format_duration,
    format_size,
    parse_settings,
)
from polyingress.core.runtime.matrix import info_of, settings_matrix
from polyingress.testing.live import Controller, HelloFleet, running, wait_until, write_manifests

README = Path(__file__).parent.parent / "README.md"
BACKENDS = ("nginx", "haproxy", "traefik")
TABLE_START = "<!-- settings-table: python -m polyingress.core.runtime.matrix --settings -->\n"
TABLE_END = "<!-- /settings-table -->\n"
CONFIGMAP = ("ops", "polyingress")


def backend_info(name: str) -> BackendInfo:
    info = info_of(name)
    assert isinstance(info, BackendInfo)
    return info


# -- the allow-list ---------------------------------------------------------------------------


def test_every_field_of_global_settings_is_a_documented_key_with_its_default() -> None:
    names = [f.name for f in dataclasses.fields(GlobalSettings)]
    assert [s.attr for s in SETTINGS.values()] == names[: len(SETTINGS)]
    assert names[len(SETTINGS) :] == ["values", "source"]
    defaults = GlobalSettings()
    for key, spec in SETTINGS.items():
        assert key == spec.attr.replace("_", "-") and spec.key == key
        assert spec.kind and spec.values and spec.meaning, key
        assert getattr(defaults, spec.attr) == spec.default, key
        if spec.default not in (None, ()):
            # The default, written as a ConfigMap would write it, parses back to itself (an
            # empty list, such as no allowed response header, is written by leaving it out).
            assert spec.parse(spec.show(spec.default)) == spec.default, key


def test_allowed_response_headers_are_the_core_s_for_every_backend() -> None:
    settings, issues = parse_settings(
        {"global-allowed-response-headers": "My-Header, X_Two,My-Header"},
        support=SettingsSupport("nginx", frozenset()),
    )
    assert issues == ()  # applied by the core: never "not applied by the backend"
    assert settings.global_allowed_response_headers == ("My-Header", "X_Two")
    settings, issues = parse_settings({"global-allowed-response-headers": "a b"})
    assert settings.global_allowed_response_headers == ()
    assert [i.reason for i in issues] == ["InvalidSetting"]


@pytest.mark.parametrize(
    ("text", "ms"),
    [("30", 30_000), ("30s", 30_000), ("500ms", 500), ("2m", 120_000), ("1h", 3_600_000)],
)
def test_durations_are_milliseconds_and_read_back(text: str, ms: int) -> None:
    settings, issues = parse_settings({"proxy-read-timeout": text})
    assert issues == () and settings.proxy_read_timeout == ms
    again, _issues = parse_settings({"proxy-read-timeout": format_duration(ms)})
    assert again.proxy_read_timeout == ms


def test_formats_are_the_syntax_all_three_proxies_read() -> None:
    assert [format_duration(ms) for ms in (1, 500, 1000, 60_000, 90_500)] == [
        "1ms",
        "500ms",
        "1s",
        "60s",
        "90500ms",
    ]
    assert [format_size(n) for n in (0, 512, 8192, 1 << 20, 3 << 30, 1025)] == [
        "0",
        "512",
        "8k",
        "1m",
        "3g",
        "1025",
    ]


def test_every_backend_declares_only_keys_of_the_allow_list() -> None:
    for name in BACKENDS:
        info = backend_info(name)
        assert info.settings, name
        assert set(info.settings) <= set(SETTINGS), (name, set(info.settings) - set(SETTINGS))


def test_readme_table_is_the_allow_list_and_the_backends_mappings() -> None:
    """README's "Global settings" table is generated: key, value, default, meaning, and what
    each built-in backend sets (its BackendInfo.settings). Regenerate it with
    ``python -m polyingress.core.runtime.matrix --settings nginx haproxy traefik`` (or
    UPDATE_GOLDEN=1)."""
    table = settings_matrix(list(BACKENDS))
    text = README.read_text()
    assert TABLE_START in text and TABLE_END in text, "README lost the settings table markers"
    before, rest = text.split(TABLE_START, 1)
    current, after = rest.split(TABLE_END, 1)
    if UPDATE_GOLDEN and current != table:
        README.write_text(before + TABLE_START + table + TABLE_END + after)
        current = table
    assert current == table, (
        "regenerate: python -m polyingress.core.runtime.matrix --settings nginx haproxy traefik"
    )
    for key in SETTINGS:
        assert f"| `{key}` |" in current


# -- one value, parsed once, in all three configurations ---------------------------------------


def _world(data: dict[str, str], port: int = 8080, address: str = "127.0.0.61") -> list[Any]:
    http = [{"name": "http", "port": port}]
    return [
        CLASS,
        service("slow", [{"name": "http", "port": 80, "targetPort": port}], ns="ops"),
        slice_("slow", [(address, True)], http, ns="ops", name="slow-1"),
        ingress("slow", rule("settings.test", path("/", "slow")), ns="ops"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"namespace": CONFIGMAP[0], "name": CONFIGMAP[1]},
            "data": data,
        },
    ]


def render(backend: str, manifests: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "polyingress.core.runtime.cli",
            "render",
            "--backend",
            backend,
            "--manifests",
            str(manifests),
            "--configmap",
            "/".join(CONFIGMAP),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def _traefik_transport(stdout: str) -> dict[str, str]:
    dynamic = stdout.split("# ---- dynamic/polyingress.yaml ----\n", 1)[1].split("# ---- ", 1)[0]
    config = yaml.safe_load(dynamic)
    (name,) = config["http"]["serversTransports"]
    for svc in config["http"]["services"].values():
        if "loadBalancer" in svc:
            assert svc["loadBalancer"]["serversTransport"] == name
    return dict(config["http"]["serversTransports"][name]["forwardingTimeouts"])


def test_one_value_reaches_every_proxy_config(tmp_path: Path) -> None:
    """proxy-read-timeout and proxy-connect-timeout, written two ways the core reads alike,
    become nginx's, HAProxy's and Traefik's own directives with the same durations."""
    write_manifests(
        tmp_path,
        "world.yaml",
        _world({"proxy-read-timeout": "90", "proxy-connect-timeout": "2500ms"}),
    )
    nginx = render("nginx", tmp_path)
    assert "proxy_read_timeout 90s;" in nginx.stdout
    assert "proxy_connect_timeout 2500ms;" in nginx.stdout
    haproxy = render("haproxy", tmp_path)
    assert "timeout server 90s" in haproxy.stdout
    assert "timeout connect 2500ms" in haproxy.stdout
    traefik = render("traefik", tmp_path)
    assert _traefik_transport(traefik.stdout) == {
        "dialTimeout": "2500ms",
        "responseHeaderTimeout": "90s",
        "idleConnTimeout": "60s",  # upstream-keepalive-timeout: the core's default
    }
    for result in (nginx, haproxy, traefik):
        assert "warning" not in result.stderr, result.stderr


def test_an_invalid_value_is_a_problem_naming_the_key_and_the_rest_renders(
    tmp_path: Path,
) -> None:
    write_manifests(
        tmp_path,
        "world.yaml",
        _world({"proxy-read-timeout": "soon", "proxy-connect-timeout": "3", "use-http2": "no"}),
    )
    want = (
        "warning: ConfigMap ops/polyingress: data['proxy-read-timeout']: 'soon': expected a "
        "duration such as 30, 30s, 500ms, 5m; ignored, the default (60s) is used"
    )
    outputs = {name: render(name, tmp_path) for name in BACKENDS}
    for name, result in outputs.items():
        assert want in result.stderr.splitlines(), (name, result.stderr)
        # use-http2 is applied by nginx only; the others say so, naming the key.
        unsupported = f"data['use-http2']: not applied by the {name} backend; ignored"
        assert (unsupported in result.stderr) == (name != "nginx"), (name, result.stderr)
        assert "settings.test" in result.stdout  # the routes are there
    assert "proxy_read_timeout 60s;" in outputs["nginx"].stdout
    assert "proxy_connect_timeout 3s;" in outputs["nginx"].stdout
    assert "timeout server 60s" in outputs["haproxy"].stdout
    assert "timeout connect 3s" in outputs["haproxy"].stdout
    transport = _traefik_transport(outputs["traefik"].stdout)
    assert transport["responseHeaderTimeout"] == "60s" and transport["dialTimeout"] == "3s"
    assert "soon" not in "".join(r.stdout for r in outputs.values())


# -- live: the setting takes effect on every proxy ---------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize("backend", [backend_param(n) for n in BACKENDS])
def test_proxy_read_timeout_answers_504_for_a_slow_backend(backend: str, tmp_path: Path) -> None:
    """A backend that takes 3 s to answer gets 504 after proxy-read-timeout (1 s), on every
    proxy; a fast answer is proxied as usual; raising the setting at run time (5 s) lets the
    same slow answer through. An invalid key in the same ConfigMap changes none of it."""
    fleet = HelloFleet([("slow-1", "127.0.0.61")])
    try:
        manifests = tmp_path / "manifests"
        data = {"proxy-read-timeout": "1", "keep-alive": "forever"}
        write_manifests(manifests, "world.yaml", _world(data, fleet.port))
        extra = ["--configmap", "/".join(CONFIGMAP)]
        with running(Controller(backend, manifests, tmp_path / "work", extra=extra)) as run:
            assert run.get("settings.test", "/fast").status == 200
            started = time.monotonic()
            slow = run.get("settings.test", "/slow?delay=3s", timeout=10)
            waited = time.monotonic() - started
            assert slow.status == 504, (slow.status, slow.body[:200])
            assert 0.8 <= waited < 2.9, waited
            assert re.search(r"data\['keep-alive'\]: 'forever': .*default \(75s\)", run.log())

            before = run.applied()
            write_manifests(
                manifests, "world.yaml", _world({"proxy-read-timeout": "5"}, fleet.port)
            )
            run.wait_applied(before)
            resp = wait_until(
                lambda: _served(run.get("settings.test", "/slow?delay=2s", timeout=10)),
                timeout=30,
            )
            assert resp.server_name == "slow-1"
    finally:
        fleet.stop()


def _served(resp: Any) -> Any:
    return resp if resp.status == 200 else None

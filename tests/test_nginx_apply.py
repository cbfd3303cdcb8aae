"""Apply-stage logic without a running nginx: attribution of nginx errors, reload reasons."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from test_nginx_render import BUILD, FIXTURES, OPTS, build, fixture_model, needs_nginx, nginx_t

from polyingress.core import (
    ModelDiff,
    ObjectRef,
    PathType,
    ReloadReason,
    RunSettings,
    fallback_certificate,
)
from polyingress.core.sources.manifests import load_objects
from polyingress.plugins.nginx.apply import (
    NginxBackend,
    NginxOptions,
    explain_failure,
    reload_reasons,
)
from polyingress.plugins.nginx.render import render


def test_failure_on_a_location_line_names_the_ingress() -> None:
    config = render(fixture_model("paths"), OPTS, fallback_certificate())
    number = config.text.splitlines().index('        location = "/Case" {') + 1
    output = (
        f'2026/01/01 00:00:00 [emerg] 1#1: duplicate location "/Case" in '
        f"/w/conf/nginx.conf.next:{number}\nnginx: configuration file test failed\n"
    )
    message, refs = explain_failure(output, config, "nginx.conf.next")
    assert message.startswith('duplicate location "/Case" (line ')
    assert refs == (ObjectRef(kind="Ingress", namespace="shop", name="shop"),)


def test_failure_naming_a_certificate_file_names_secret_and_ingress() -> None:
    config = render(fixture_model("cafe"), OPTS, fallback_certificate())
    pair = next(p for p in config.key_pairs if p.name == "default__cafe-secret")
    output = f'nginx: [emerg] cannot load certificate "/w/conf/{pair.crt}": PEM routines\n'
    _message, refs = explain_failure(output, config, "nginx.conf.next")
    assert set(refs) == {
        ObjectRef(kind="Secret", namespace="default", name="cafe-secret"),
        ObjectRef(kind="Ingress", namespace="default", name="cafe-ingress"),
    }


@needs_nginx
def test_real_settings_failure_is_attributed_to_the_configmap(tmp_path: Path) -> None:
    """proxy-buffer-size passes its validator; nginx's own rule on proxy_buffers refuses it."""
    objects = load_objects(FIXTURES / "settings.yaml")
    cm = next(o for o in objects if o["kind"] == "ConfigMap")
    cm["data"] = {"proxy-buffer-size": "64k"}
    config = render(build(objects, BUILD["settings"]), OPTS, fallback_certificate())
    result = nginx_t(tmp_path, config)
    assert result.returncode != 0
    message, refs = explain_failure(result.stdout, config, "nginx.conf")
    assert "proxy_busy_buffers_size" in message
    assert refs == (ObjectRef(kind="ConfigMap", namespace="kube-system", name="polyingress"),)


@needs_nginx
def test_real_failure_on_a_location_line_is_attributed(tmp_path: Path) -> None:
    config = render(fixture_model("paths"), OPTS, fallback_certificate())
    line = '        location = "/Case" {'
    broken = config.text.replace(line, line.replace("{", "{ bogus_directive;"), 1)
    result = nginx_t(tmp_path, config, broken)
    message, refs = explain_failure(result.stdout, config, "nginx.conf")
    assert 'unknown directive "bogus_directive"' in message
    assert refs == (ObjectRef(kind="Ingress", namespace="shop", name="shop"),)


def test_failure_without_a_location_keeps_nginx_message() -> None:
    config = render(fixture_model("cafe"), OPTS, fallback_certificate())
    output = "nginx: [emerg] bind() to 127.0.0.1:80 failed (13: Permission denied)\n"
    assert explain_failure(output, config, "nginx.conf.next") == (
        "bind() to 127.0.0.1:80 failed (13: Permission denied)",
        (),
    )
    assert explain_failure("", config, "nginx.conf.next")[0] == (
        "nginx -t failed without a message"
    )


@pytest.mark.parametrize(
    ("diff", "reasons"),
    [
        (ModelDiff(endpoints_changed=("a",)), (ReloadReason.ENDPOINTS_CHANGED,)),
        (
            ModelDiff(backends_added=("a",), routes_added=((None, "/", PathType.PREFIX),)),
            (ReloadReason.ROUTES_CHANGED,),
        ),
        (ModelDiff(vhosts_added=("a.example.com",)), (ReloadReason.ROUTES_CHANGED,)),
        (
            ModelDiff(tls_changed=("a.example.com",), certificates_changed=("x",)),
            (ReloadReason.CERTIFICATES_CHANGED,),
        ),
        (
            ModelDiff(settings_changed=True, default_backend_changed=True),
            (ReloadReason.ROUTES_CHANGED, ReloadReason.SETTINGS_CHANGED),
        ),
        (ModelDiff(), (ReloadReason.OTHER,)),
    ],
    ids=["endpoints", "routes-and-backends", "hosts", "tls", "settings-default", "nothing"],
)
def test_reload_reasons_are_the_cores_vocabulary(
    diff: ModelDiff, reasons: tuple[ReloadReason, ...]
) -> None:
    assert reload_reasons(diff) == reasons


@pytest.mark.skipif(os.geteuid() != 0, reason="workers only change user when nginx runs as root")
def test_root_run_warns_when_workers_cannot_reach_the_prefix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    backend = NginxBackend(
        RunSettings(backend="nginx", workdir=private / "work"), NginxOptions(status_port=1)
    )
    with caplog.at_level(logging.WARNING, logger="polyingress.nginx"):
        backend._check_worker_access()
        backend._check_worker_access()
    assert caplog.text.count("cannot reach") == 1
    assert f"{private} is not searchable by others" in caplog.text

"""The ConfigMap allow-list: every key's validator, and what happens to the rest."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from polyingress.core import GlobalSettings, ObjectRef
from polyingress.plugins.nginx import settings as settings_module
from polyingress.plugins.nginx.settings import SETTINGS, NginxSettings, parse_settings

SOURCE = ObjectRef(kind="ConfigMap", namespace="kube-system", name="polyingress")


def parse(**values: str) -> tuple[NginxSettings, tuple[str, ...]]:
    pairs = tuple(sorted((k.replace("_", "-"), v) for k, v in values.items()))
    return parse_settings(GlobalSettings(values=pairs, source=SOURCE))


@pytest.mark.parametrize(
    ("key", "value", "field", "parsed"),
    [
        ("worker-processes", "auto", "worker_processes", "auto"),
        ("worker-processes", "8", "worker_processes", "8"),
        ("max-worker-connections", "4096", "max_worker_connections", 4096),
        ("worker-shutdown-timeout", "240", "worker_shutdown_timeout", "240s"),
        ("error-log-level", "WARN", "error_log_level", "warn"),
        ("keep-alive", "500ms", "keep_alive", "500ms"),
        ("client-body-timeout", "2m", "client_body_timeout", "2m"),
        ("large-client-header-buffers", "8  16K", "large_client_header_buffers", "8 16k"),
        ("proxy-body-size", "0", "proxy_body_size", "0"),
        ("proxy-body-size", "20M", "proxy_body_size", "20m"),
        ("proxy-read-timeout", "3600", "proxy_read_timeout", "3600s"),
        ("proxy-buffering", "off", "proxy_buffering", False),
        (
            "proxy-next-upstream",
            "error error http_502",
            "proxy_next_upstream",
            ("error", "http_502"),
        ),
        ("proxy-next-upstream", "off", "proxy_next_upstream", ("off",)),
        ("upstream-keepalive-connections", "0", "upstream_keepalive_connections", 0),
        ("server-tokens", "True", "server_tokens", True),
        ("use-http2", "false", "use_http2", False),
        ("ssl-protocols", "TLSv1.2", "ssl_protocols", ("TLSv1.2",)),
        ("ssl-ciphers", "ECDHE+AESGCM:!aNULL", "ssl_ciphers", "ECDHE+AESGCM:!aNULL"),
        (
            "log-format-upstream",
            "$host ${status}x $http_x_id",
            "log_format_upstream",
            "$host ${status}x $http_x_id",
        ),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_valid_values_are_normalized(key: str, value: str, field: str, parsed: Any) -> None:
    settings, problems = parse_settings(GlobalSettings(values=((key, value),), source=SOURCE))
    assert problems == ()
    assert getattr(settings, field) == parsed
    assert settings.from_configmap == frozenset({key})


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("worker-processes", "0", "1-1024"),
        ("worker-processes", "auto; load_module x", "1-1024"),
        ("max-worker-connections", "1e6", "whole number"),
        ("keep-alive", "1y", "duration"),
        ("keep-alive", "30s; include /etc/passwd", "duration"),
        ("proxy-read-timeout", "8d", "7 days"),
        ("proxy-body-size", "-1", "size"),
        ("proxy-body-size", "1t", "size"),
        ("proxy-buffering", "maybe", "true or false"),
        ("proxy-next-upstream", "error off", "stand alone"),
        ("proxy-next-upstream", "error http_999", "'http_999'"),
        ("proxy-next-upstream", "   ", "at least one"),
        ("large-client-header-buffers", "4", "NUMBER SIZE"),
        ("ssl-protocols", "SSLv3", "'SSLv3'"),
        ("ssl-ciphers", 'HIGH" ; ssl_engine x', "cipher list"),
        ("error-log-level", "debug", "one of"),
        ("log-format-upstream", "$cookie_session", "$cookie_session"),
        ("log-format-upstream", "costs $5", "variable $5"),
        ("log-format-upstream", "100$", "variable name"),
        ("log-format-upstream", "${nosuchvar}", "$nosuchvar"),
    ],
)
def test_invalid_values_are_reported_and_ignored(key: str, value: str, reason: str) -> None:
    settings, problems = parse_settings(GlobalSettings(values=((key, value),), source=SOURCE))
    assert settings == NginxSettings()
    assert len(problems) == 1
    assert problems[0].startswith(f"ConfigMap kube-system/polyingress: data['{key}']: ")
    assert reason in problems[0]
    assert problems[0].endswith("; ignored")


@pytest.mark.parametrize("key", ["server-snippet", "http-snippet", "main-snippet", "load-module"])
def test_unknown_keys_are_reported_and_ignored(key: str) -> None:
    settings, problems = parse_settings(GlobalSettings(values=((key, "x"),), source=SOURCE))
    assert settings == NginxSettings()
    assert problems == (
        f"ConfigMap kube-system/polyingress: data['{key}']: not a setting of the nginx backend; "
        "ignored",
    )


def test_long_values_are_shortened_in_reports() -> None:
    _settings, problems = parse(keep_alive="9" * 100)
    assert "..." in problems[0] and len(problems[0]) < 200


def test_every_setting_has_a_field_directives_and_documentation() -> None:
    names = {f.name for f in dataclasses.fields(NginxSettings)}
    doc = settings_module.__doc__ or ""
    for spec in SETTINGS.values():
        assert spec.field in names, spec.key
        assert spec.directives, spec.key
        assert f"\n{spec.key} " in doc, f"{spec.key} is not in the module's table"


def test_no_settings_means_defaults() -> None:
    assert parse_settings(GlobalSettings()) == (NginxSettings(), ())

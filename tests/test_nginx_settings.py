"""The ConfigMap's settings as nginx writes them: every key parsed by the core's allow-list and
formatted by plugins/nginx/settings.py, and what happens to the rest (reported by the core)."""

from __future__ import annotations

from typing import Any

import pytest

from polyingress.core import (
    SETTINGS as CORE_SETTINGS,
)
from polyingress.core import (
    BuildOptions,
    GlobalSettings,
    ObjectRef,
    ObjectStore,
    Problem,
    SettingsSupport,
    build_model,
    parse_settings,
)
from polyingress.plugins.nginx.settings import SETTINGS, NginxSettings, nginx_settings

SOURCE = ObjectRef(kind="ConfigMap", namespace="kube-system", name="polyingress")
NGINX = SettingsSupport("nginx", frozenset(SETTINGS))


def build(data: dict[str, str]) -> tuple[NginxSettings, tuple[Problem, ...]]:
    """The settings nginx would write for a ConfigMap with ``data``, and the build's problems."""
    store = ObjectStore()
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": SOURCE.namespace, "name": SOURCE.name},
        "data": data,
    }
    store.replace_many(upserts=[configmap], deletes=())
    opts = BuildOptions(configmap=(SOURCE.namespace, SOURCE.name), settings_support=NGINX)
    result = build_model(store.snapshot(), opts)
    return nginx_settings(result.model.settings), result.problems


DEFAULTS = nginx_settings(GlobalSettings())


@pytest.mark.parametrize(
    ("key", "value", "field", "parsed"),
    [
        ("worker-processes", "auto", "worker_processes", "auto"),
        ("worker-processes", "8", "worker_processes", "8"),
        ("max-worker-connections", "4096", "max_worker_connections", 4096),
        ("worker-shutdown-timeout", "240", "worker_shutdown_timeout", "240s"),
        ("error-log-level", "WARN", "error_log_level", "warn"),
        ("keep-alive", "500ms", "keep_alive", "500ms"),
        # Durations are milliseconds in the core; nginx gets seconds (or ms) back.
        ("client-body-timeout", "2m", "client_body_timeout", "120s"),
        ("large-client-header-buffers", "8  16K", "large_client_header_buffers", "8 16k"),
        ("proxy-body-size", "0", "proxy_body_size", "0"),
        ("proxy-body-size", "20M", "proxy_body_size", "20m"),
        ("proxy-body-size", "1024k", "proxy_body_size", "1m"),
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
    settings, problems = build({key: value})
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
        ("keep-alive", "0", "at least 1ms"),
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
    settings, problems = build({key: value})
    assert settings == DEFAULTS
    (problem,) = problems
    assert str(problem).startswith(f"ConfigMap kube-system/polyingress: data['{key}']: ")
    assert reason in problem.message
    assert problem.reason == "InvalidSetting"
    default = CORE_SETTINGS[key].default
    shown = "the backend's" if default is None else CORE_SETTINGS[key].show(default)
    assert problem.message.endswith(f"; ignored, the default ({shown}) is used")


@pytest.mark.parametrize("key", ["server-snippet", "http-snippet", "main-snippet", "load-module"])
def test_unknown_keys_are_reported_and_ignored(key: str) -> None:
    settings, problems = build({key: "x"})
    assert settings == DEFAULTS
    assert [str(p) for p in problems] == [
        f"ConfigMap kube-system/polyingress: data['{key}']: not a setting of polyingress; ignored"
    ]
    assert problems[0].reason == "UnknownSetting"


def test_long_values_are_shortened_in_reports() -> None:
    _settings, problems = build({"keep-alive": "9" * 100})
    assert "..." in problems[0].message and "9" * 60 not in problems[0].message


def test_nginx_applies_every_key_of_the_allow_list() -> None:
    # (every key a backend applies: those the core applies itself are no backend's)
    assert set(SETTINGS) == {k for k, s in CORE_SETTINGS.items() if not s.core}
    for spec in SETTINGS.values():
        assert spec.directives, spec.key


def test_no_settings_means_defaults() -> None:
    assert parse_settings({}) == (GlobalSettings(), ())
    assert DEFAULTS.worker_shutdown_timeout == "10s"
    assert DEFAULTS.max_worker_connections == 1024  # nginx's own, the core says "backend's"
    assert DEFAULTS.from_configmap == frozenset()

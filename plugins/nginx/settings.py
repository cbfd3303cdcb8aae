"""Global nginx settings from the ``--configmap`` ConfigMap: the documented allow-list.

Only the keys below are read; each value is parsed by its validator into a typed, normalized
value (never the raw text). Unknown keys and invalid values are reported and ignored: nothing a
ConfigMap says reaches nginx.conf verbatim. There is no snippet key.

Keys are named as ingress-nginx names them where the concept is the same.

========================================  ===========  ===================================
key                                       default      value
========================================  ===========  ===================================
worker-processes                          auto         ``auto`` or 1-1024
max-worker-connections                    1024         16-1048576
worker-shutdown-timeout                   10s          duration (bounds a reload's old
                                                       workers and ``stop``)
error-log-level                           notice       notice, warn, error, crit (``info``
                                                       too); nginx logs go to our stderr
keep-alive                                75s          client keepalive_timeout, duration
keep-alive-requests                       1000         1-1000000
client-header-timeout                     60s          duration
client-body-timeout                       60s          duration
large-client-header-buffers               4 8k         ``N SIZE``, N 1-64
proxy-body-size                           1m           size; ``0`` = unlimited
proxy-connect-timeout                     5s           duration
proxy-read-timeout                        60s          duration
proxy-send-timeout                        60s          duration
proxy-buffering                           true         true / false
proxy-buffer-size                         (nginx's)    size (must fit nginx's own rules on
                                                       proxy_buffers: nginx -t checks)
proxy-next-upstream                       error timeout  words of: error timeout
                                                       invalid_header http_500 http_502
                                                       http_503 http_504 http_403 http_404
                                                       http_429 non_idempotent, or off
proxy-next-upstream-tries                 0            0-100 (0 = no limit)
upstream-keepalive-connections            32           0-100000 (0 = no upstream keepalive)
upstream-keepalive-timeout                60s          duration
upstream-keepalive-requests               1000         1-1000000
server-tokens                             false        true / false
enable-access-log                         false        true / false (logs/access.log)
log-format-upstream                       (below)      access log format; variables limited
                                                       to a known list and $http_*
compute-full-forwarded-for                false        true: append to the client's
                                                       X-Forwarded-For (trusted edge only)
use-http2                                 true         true / false (HTTPS listener)
ssl-protocols                             TLSv1.2 TLSv1.3  words of TLSv1 TLSv1.1 TLSv1.2
                                                       TLSv1.3
ssl-ciphers                               (nginx's)    OpenSSL cipher list
========================================  ===========  ===================================

Durations are a number with an optional unit ``ms s m h d`` (a bare number is seconds, as in
ingress-nginx); sizes a number with an optional ``k m g`` (bytes when bare).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from polyingress.core import GlobalSettings

__all__ = [
    "DEFAULT_LOG_FORMAT",
    "SETTINGS",
    "NginxSettings",
    "SettingSpec",
    "parse_settings",
]

DEFAULT_LOG_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_length $request_time $host '
    "$upstream_addr $upstream_status $upstream_response_time $request_id"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class NginxSettings:
    """Typed, validated settings; every field already has its nginx form."""

    worker_processes: str = "auto"
    max_worker_connections: int = 1024
    worker_shutdown_timeout: str = "10s"
    error_log_level: str = "notice"
    keep_alive: str = "75s"
    keep_alive_requests: int = 1000
    client_header_timeout: str = "60s"
    client_body_timeout: str = "60s"
    large_client_header_buffers: str = "4 8k"
    proxy_body_size: str = "1m"
    proxy_connect_timeout: str = "5s"
    proxy_read_timeout: str = "60s"
    proxy_send_timeout: str = "60s"
    proxy_buffering: bool = True
    proxy_buffer_size: str | None = None
    proxy_next_upstream: tuple[str, ...] = ("error", "timeout")
    proxy_next_upstream_tries: int = 0
    upstream_keepalive_connections: int = 32
    upstream_keepalive_timeout: str = "60s"
    upstream_keepalive_requests: int = 1000
    server_tokens: bool = False
    enable_access_log: bool = False
    log_format_upstream: str = DEFAULT_LOG_FORMAT
    compute_full_forwarded_for: bool = False
    use_http2: bool = True
    ssl_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ssl_ciphers: str | None = None
    # Keys set from the ConfigMap (for attributing an nginx -t failure to it).
    from_configmap: frozenset[str] = frozenset()


_DURATION = re.compile(r"^(\d{1,7})(ms|s|m|h|d)?$")
_SIZE = re.compile(r"^(\d{1,7})([kmg]?)$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_SECONDS = 7 * 86400


def _duration(value: str) -> str:
    m = _DURATION.match(value.strip())
    if m is None:
        raise ValueError("expected a duration such as 30, 30s, 500ms, 5m")
    number, unit = int(m.group(1)), m.group(2) or "s"
    if number * _UNIT_SECONDS[unit] > _MAX_SECONDS:
        raise ValueError("longer than 7 days")
    return f"{number}{unit}"


def _size(value: str) -> str:
    m = _SIZE.match(value.strip())
    if m is None:
        raise ValueError("expected a size such as 0, 512, 8k, 10m, 1g")
    return f"{int(m.group(1))}{m.group(2).lower()}"


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "on", "yes"):
        return True
    if v in ("false", "off", "no"):
        return False
    raise ValueError("expected true or false")


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        v = value.strip()
        if not re.fullmatch(r"\d{1,8}", v):
            raise ValueError(f"expected a whole number {low}-{high}")
        n = int(v)
        if not low <= n <= high:
            raise ValueError(f"expected a whole number {low}-{high}")
        return n

    return parse


def _worker_processes(value: str) -> str:
    v = value.strip().lower()
    if v == "auto":
        return v
    return str(_int_range(1, 1024)(v))


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        v = value.strip().lower()
        if v not in allowed:
            raise ValueError("expected one of " + ", ".join(allowed))
        return v

    return parse


def _words(
    allowed: tuple[str, ...], *, alone: tuple[str, ...] = ()
) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        words = value.split()
        if not words:
            raise ValueError("expected at least one of " + " ".join(allowed + alone))
        bad = [w for w in words if w not in allowed and w not in alone]
        if bad:
            raise ValueError(f"{bad[0]!r} is not one of " + " ".join(allowed + alone))
        if any(w in alone for w in words) and len(words) > 1:
            raise ValueError(f"{' / '.join(alone)} must stand alone")
        return tuple(dict.fromkeys(words))

    return parse


def _header_buffers(value: str) -> str:
    parts = value.split()
    if len(parts) != 2:
        raise ValueError("expected NUMBER SIZE, e.g. 4 8k")
    return f"{_int_range(1, 64)(parts[0])} {_size(parts[1])}"


_CIPHERS = re.compile(r"^[A-Za-z0-9:+!@._-]{1,1000}$")


def _ciphers(value: str) -> str:
    v = value.strip()
    if not _CIPHERS.match(v):
        raise ValueError("expected an OpenSSL cipher list (letters, digits and : + ! @ . _ -)")
    # Ask the same OpenSSL nginx links: a list it cannot use fails here, naming the key,
    # instead of failing `nginx -t` with a message that names no object.
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(v)
    except ssl.SSLError:
        raise ValueError(f"OpenSSL knows no cipher in {v!r}") from None
    return v


# Variables a log format may use: plain request/response facts. $http_NAME (request headers)
# is allowed too; $cookie_*, $arg_* and everything else are not.
_LOG_VARIABLES = frozenset(
    {
        "remote_addr",
        "remote_port",
        "remote_user",
        "time_local",
        "time_iso8601",
        "msec",
        "request",
        "request_method",
        "request_uri",
        "uri",
        "args",
        "server_protocol",
        "scheme",
        "host",
        "server_name",
        "server_port",
        "status",
        "body_bytes_sent",
        "bytes_sent",
        "request_length",
        "request_time",
        "request_id",
        "connection",
        "connection_requests",
        "pipe",
        "ssl_protocol",
        "ssl_cipher",
        "ssl_server_name",
        "upstream_addr",
        "upstream_status",
        "upstream_response_time",
        "upstream_connect_time",
        "upstream_header_time",
        "upstream_response_length",
        "upstream_bytes_received",
        "upstream_bytes_sent",
    }
)
_LOG_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]*))")


def _log_format(value: str) -> str:
    if not value.strip():
        raise ValueError("empty log format")
    if "%%polyingress" in value:
        raise ValueError("'%%polyingress' is reserved for the renderer's own placeholders")
    for m in _LOG_VARIABLE.finditer(value):
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if not name:
            raise ValueError("'$' must start a variable name; write the text without it")
        if name not in _LOG_VARIABLES and not re.fullmatch(r"http_[a-z0-9_]+", name):
            raise ValueError(f"variable ${name} is not allowed in a log format")
    return value


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """A key, the NginxSettings field it sets, its validator, and the nginx directives it
    affects (to attribute an ``nginx -t`` failure to the ConfigMap)."""

    key: str
    field: str
    parse: Callable[[str], Any]
    directives: tuple[str, ...]


def _spec(key: str, parse: Callable[[str], Any], *directives: str) -> SettingSpec:
    field = key.replace("-", "_")
    return SettingSpec(key, field, parse, directives or (field,))


SETTINGS: dict[str, SettingSpec] = {
    s.key: s
    for s in (
        _spec("worker-processes", _worker_processes),
        _spec("max-worker-connections", _int_range(16, 1_048_576), "worker_connections"),
        _spec("worker-shutdown-timeout", _duration),
        _spec("error-log-level", _choice("info", "notice", "warn", "error", "crit"), "error_log"),
        _spec("keep-alive", _duration, "keepalive_timeout"),
        _spec("keep-alive-requests", _int_range(1, 1_000_000), "keepalive_requests"),
        _spec("client-header-timeout", _duration),
        _spec("client-body-timeout", _duration),
        _spec("large-client-header-buffers", _header_buffers),
        _spec("proxy-body-size", _size, "client_max_body_size"),
        _spec("proxy-connect-timeout", _duration),
        _spec("proxy-read-timeout", _duration),
        _spec("proxy-send-timeout", _duration),
        _spec("proxy-buffering", _bool),
        _spec(
            "proxy-buffer-size",
            _size,
            "proxy_buffer_size",
            "proxy_buffers",
            "proxy_busy_buffers_size",
        ),
        _spec(
            "proxy-next-upstream",
            _words(
                (
                    "error",
                    "timeout",
                    "invalid_header",
                    "http_500",
                    "http_502",
                    "http_503",
                    "http_504",
                    "http_403",
                    "http_404",
                    "http_429",
                    "non_idempotent",
                ),
                alone=("off",),
            ),
        ),
        _spec("proxy-next-upstream-tries", _int_range(0, 100)),
        _spec("upstream-keepalive-connections", _int_range(0, 100_000), "keepalive"),
        _spec("upstream-keepalive-timeout", _duration, "keepalive_timeout"),
        _spec("upstream-keepalive-requests", _int_range(1, 1_000_000), "keepalive_requests"),
        _spec("server-tokens", _bool),
        _spec("enable-access-log", _bool, "access_log"),
        _spec("log-format-upstream", _log_format, "log_format"),
        _spec("compute-full-forwarded-for", _bool, "proxy_set_header"),
        _spec("use-http2", _bool, "http2"),
        _spec("ssl-protocols", _words(("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"))),
        _spec("ssl-ciphers", _ciphers),
    )
}


def parse_settings(settings: GlobalSettings) -> tuple[NginxSettings, tuple[str, ...]]:
    """Validated settings and the problems found (one sentence per ignored key)."""
    where = str(settings.source) if settings.source is not None else "settings"
    values: dict[str, Any] = {}
    problems: list[str] = []
    accepted: list[str] = []
    for key, raw in settings.values:
        spec = SETTINGS.get(key)
        if spec is None:
            problems.append(f"{where}: data[{key!r}]: not a setting of the nginx backend; ignored")
            continue
        try:
            values[spec.field] = spec.parse(raw)
        except ValueError as exc:
            shown = raw if len(raw) <= 60 else raw[:57] + "..."
            problems.append(f"{where}: data[{key!r}]: {shown!r}: {exc}; ignored")
            continue
        accepted.append(key)
    values["from_configmap"] = frozenset(accepted)
    return replace(NginxSettings(), **values), tuple(problems)

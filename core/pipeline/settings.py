"""Proxy-wide settings from the ``--configmap`` ConfigMap: the one allow-list, parsed once.

Every key the project reads is a field of :class:`GlobalSettings`; the field's metadata is its
:class:`Setting` (the ConfigMap key, its kind, the parser, the accepted values, the meaning),
and the field's default is the key's default. The builder calls :func:`parse_settings` once
per build: each value is parsed into a typed value (never kept as text for a proxy), an
invalid value is a problem naming the key and the default is used, an unknown key is a
problem and ignored. Backends only format the typed values into their own syntax and declare
which keys they apply (``BackendInfo.settings``); a key the selected backend does not apply is
reported too (:class:`SettingsSupport`). Keys are named as ingress-nginx names them where the
concept is the same. There is no snippet key.

Units of the typed values:

* **duration**: an ``int`` of **milliseconds**. Written as a number with an optional unit
  ``ms s m h d`` (a bare number is seconds, as in ingress-nginx), from 1 ms to 7 days.
  :func:`format_duration` writes it back as ``<n>s`` or ``<n>ms``, which nginx, HAProxy and
  Traefik (Go) all read.
* **size**: an ``int`` of **bytes**. Written as a number with an optional ``k m g`` (any
  case; bytes when bare). :func:`format_size` writes it back with the largest exact unit.
* **int**: an ``int`` in the documented range; **bool**: ``true``/``on``/``yes`` or
  ``false``/``off``/``no`` (any case); **enum** and **words**: lowercase words (``words``: a
  tuple, duplicates dropped, order kept); **text**: checked against the key's own rule.

A default of ``None`` means "the backend's own default", which each backend states in its
``BackendInfo.settings`` text (the README's table shows it).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # model.py imports this module: no import of it at run time
    from polyingress.core.pipeline.model import ObjectRef

__all__ = [
    "DEFAULT_LOG_FORMAT",
    "SETTINGS",
    "GlobalSettings",
    "Setting",
    "SettingIssue",
    "SettingsSupport",
    "default_text",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_settings",
    "parse_size",
    "parse_switch",
    "settings_table",
]

MAX_VALUE_LENGTH = 1024
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DURATION = re.compile(r"^(\d{1,7})(ms|s|m|h|d)?$")
_SIZE = re.compile(r"^(\d{1,7})([kmg]?)$", re.IGNORECASE)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SIZE_UNITS = (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10))
_MAX_MS = 7 * 86_400_000


# -- the value types: parse (str -> typed, ValueError with a sentence) and format ----------------


def parse_duration(value: str) -> int:
    """Milliseconds, 1 ms to 7 days."""
    m = _DURATION.match(value.strip())
    if m is None:
        raise ValueError("expected a duration such as 30, 30s, 500ms, 5m")
    ms = int(m.group(1)) * _UNIT_MS[m.group(2) or "s"]
    if ms > _MAX_MS:
        raise ValueError("longer than 7 days")
    if ms < 1:
        raise ValueError("expected at least 1ms")
    return ms


def format_duration(ms: int) -> str:
    """``60000`` -> ``60s``, ``500`` -> ``500ms``: the syntax nginx, HAProxy and Go all read."""
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def parse_size(value: str) -> int:
    """Bytes."""
    m = _SIZE.match(value.strip())
    if m is None:
        raise ValueError("expected a size such as 0, 512, 8k, 10m, 1g")
    unit = m.group(2).lower()
    return int(m.group(1)) * dict(_SIZE_UNITS).get(unit, 1)


def format_size(size: int) -> str:
    """``8192`` -> ``8k``, ``1048576`` -> ``1m``, ``0`` -> ``0``: the largest exact unit."""
    for unit, factor in _SIZE_UNITS:
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def parse_switch(value: str) -> bool:
    """A ConfigMap boolean: true/on/yes or false/off/no, any case (ingress-nginx's keys such as
    ``proxy-buffering`` take ``on``/``off``)."""
    v = value.strip().lower()
    if v in ("true", "on", "yes"):
        return True
    if v in ("false", "off", "no"):
        return False
    raise ValueError("expected true or false")


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        v = value.strip()
        if not re.fullmatch(r"\d{1,8}", v) or not low <= int(v) <= high:
            raise ValueError(f"expected a whole number {low}-{high}")
        return int(v)

    return parse


def _worker_processes(value: str) -> int:
    if value.strip().lower() == "auto":
        return 0
    return _int_range(1, 1024)(value)


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


_RESPONSE_HEADER = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _header_names(value: str) -> tuple[str, ...]:
    """Comma-separated response header names (ingress-nginx's custom-headers name rule:
    letters, digits, ``-`` and ``_``), duplicates dropped, order and case kept."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ValueError("expected comma-separated header names")
    for name in names:
        if not _RESPONSE_HEADER.fullmatch(name):
            raise ValueError(f"{name[:60]!r} is not a header name (letters, digits, - and _)")
    return tuple(dict.fromkeys(names))


def _show_names(names: tuple[str, ...]) -> str:
    return ",".join(names)


def _buffers(value: str) -> tuple[int, int]:
    parts = value.split()
    if len(parts) != 2:
        raise ValueError("expected NUMBER SIZE, e.g. 4 8k")
    return _int_range(1, 64)(parts[0]), parse_size(parts[1])


_CIPHERS = re.compile(r"^[A-Za-z0-9:+!@._-]{1,1000}$")


def _ciphers(value: str) -> str:
    v = value.strip()
    if not _CIPHERS.match(v):
        raise ValueError("expected an OpenSSL cipher list (letters, digits and : + ! @ . _ -)")
    # Ask the OpenSSL the proxies link: a list it cannot use fails here, naming the key,
    # instead of failing the proxy's own check with a message that names no object.
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(v)
    except ssl.SSLError:
        raise ValueError(f"OpenSSL knows no cipher in {v!r}") from None
    return v


# Variables a log format may use: plain request/response facts. $http_NAME (request headers)
# is allowed too; $cookie_*, $arg_* and everything else are not.
LOG_VARIABLES = frozenset(
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
# A renderer may put its own placeholders into a log format: they start with this.
RESERVED_IN_LOG_FORMAT = "%%polyingress"

DEFAULT_LOG_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_length $request_time $host '
    "$upstream_addr $upstream_status $upstream_response_time $request_id"
)


def _log_format(value: str) -> str:
    if not value.strip():
        raise ValueError("empty log format")
    if RESERVED_IN_LOG_FORMAT in value:
        raise ValueError(f"{RESERVED_IN_LOG_FORMAT!r} is reserved for the renderer's placeholders")
    for m in _LOG_VARIABLE.finditer(value):
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if not name:
            raise ValueError("'$' must start a variable name; write the text without it")
        if name not in LOG_VARIABLES and not re.fullmatch(r"http_[a-z0-9_]+", name):
            raise ValueError(f"variable ${name} is not allowed in a log format")
    return value


# -- the allow-list -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One ConfigMap key: ``kind`` (duration, size, int, bool, enum, words, text, ...),
    ``parse`` (text -> typed value, ValueError with a sentence), ``values`` (what is accepted,
    for people), ``meaning`` (one sentence, the same on every backend), ``show`` (a typed
    value as the ConfigMap would write it). ``key`` and ``attr`` (the GlobalSettings field) are
    filled in from the field."""

    kind: str
    parse: Callable[[str], Any]
    values: str
    meaning: str
    show: Callable[[Any], str] = str
    key: str = ""
    attr: str = ""
    default: Any = None
    # Set when the core applies the key for every backend (what it does, for the table): no
    # backend declares it, and it is never reported as not applied.
    core: str = ""


def _show_words(words: tuple[str, ...]) -> str:
    return " ".join(words)


def _show_buffers(value: tuple[int, int]) -> str:
    return f"{value[0]} {format_size(value[1])}"


def _show_bool(value: bool) -> str:
    return "true" if value else "false"


def _show_workers(value: int) -> str:
    return "auto" if value == 0 else str(value)


_DURATION_VALUES = "duration, 1ms-7d"


def _setting(
    default: Any,
    kind: str,
    parse: Callable[[str], Any],
    values: str,
    meaning: str,
    show: Callable[[Any], str] | None = None,
) -> Any:
    shows = {"duration": format_duration, "size": format_size, "bool": _show_bool}
    spec = Setting(
        kind=kind, parse=parse, values=values, meaning=meaning, show=show or shows.get(kind, str)
    )
    return field(default=default, metadata={"setting": spec})


def _duration(default_ms: int, meaning: str) -> Any:
    return _setting(default_ms, "duration", parse_duration, _DURATION_VALUES, meaning)


def _switch(default: bool, meaning: str) -> Any:
    return _setting(default, "bool", parse_switch, "true / false (on/off, yes/no)", meaning)


def _count(default: int | None, low: int, high: int, meaning: str) -> Any:
    return _setting(default, "int", _int_range(low, high), f"{low}-{high}", meaning)


_NEXT_UPSTREAM = (
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
)
_TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalSettings:
    """Validated proxy-wide settings from the ``--configmap`` ConfigMap, typed.

    One field per key of the allow-list (the key with ``_`` for ``-``); its default is the
    key's default. Durations are ``int`` milliseconds, sizes ``int`` bytes (module docstring).
    ``values`` are the (key, text) pairs the ConfigMap set and that were valid, sorted by key;
    ``source`` is the ConfigMap (None without ``--configmap``). Build it with
    :func:`parse_settings` (the builder does); ``GlobalSettings()`` is every default.
    """

    worker_processes: int = _setting(  # 0: auto
        0,
        "int or auto",
        _worker_processes,
        "auto or 1-1024",
        "worker processes (auto: one per CPU core)",
        _show_workers,
    )
    max_worker_connections: int | None = _count(
        None, 16, 1_048_576, "connections the proxy accepts at once (nginx: per worker)"
    )
    worker_shutdown_timeout: int = _duration(
        10_000,
        "how long a proxy instance that a reload replaced, or that is stopping, may finish "
        "open requests; what is still open then is closed",
    )
    error_log_level: str = _setting(
        "notice",
        "enum",
        _choice("info", "notice", "warn", "error", "crit"),
        "info, notice, warn, error, crit",
        "the proxy's error log level (the log goes to stderr)",
    )
    keep_alive: int = _duration(75_000, "how long an idle client keep-alive connection is kept")
    keep_alive_requests: int = _count(
        1000, 1, 1_000_000, "requests one client keep-alive connection may carry"
    )
    client_header_timeout: int = _duration(60_000, "time to receive a request's headers")
    client_body_timeout: int = _duration(
        60_000, "time between two reads of a request body from the client"
    )
    large_client_header_buffers: tuple[int, int] = _setting(
        (4, 8192),
        "count size",
        _buffers,
        "NUMBER SIZE, NUMBER 1-64",
        "buffers for long request lines and headers",
        _show_buffers,
    )
    proxy_body_size: int = _setting(
        1 << 20, "size", parse_size, "size; 0 = unlimited", "the largest request body accepted"
    )
    proxy_connect_timeout: int = _duration(5_000, "time to connect to a backend endpoint")
    proxy_read_timeout: int = _duration(60_000, "time to wait for the backend's response; then 504")
    proxy_send_timeout: int = _duration(
        60_000, "time between two writes of the request to the backend"
    )
    proxy_buffering: bool = _switch(True, "buffer backend responses")
    proxy_buffer_size: int | None = _setting(
        None,
        "size",
        parse_size,
        "size (nginx -t checks it against proxy_buffers)",
        "the buffer for the first part of a backend response",
    )
    proxy_next_upstream: tuple[str, ...] = _setting(
        ("error", "timeout"),
        "words",
        _words(_NEXT_UPSTREAM, alone=("off",)),
        "words of: " + " ".join(_NEXT_UPSTREAM) + "; or off",
        "when a request is passed on to the next endpoint",
        _show_words,
    )
    proxy_next_upstream_tries: int = _count(
        0, 0, 100, "endpoints tried for one request (0 = no limit)"
    )
    upstream_keepalive_connections: int = _count(
        32, 0, 100_000, "idle keep-alive connections kept to backends (0 = none)"
    )
    upstream_keepalive_timeout: int = _duration(
        60_000, "how long an idle keep-alive connection to a backend is kept"
    )
    upstream_keepalive_requests: int = _count(
        1000, 1, 1_000_000, "requests one keep-alive connection to a backend may carry"
    )
    server_tokens: bool = _switch(False, "the proxy's version in the Server header")
    enable_access_log: bool = _switch(False, "write an access log (logs/access.log)")
    log_format_upstream: str = _setting(
        DEFAULT_LOG_FORMAT,
        "text",
        _log_format,
        "nginx log_format text; variables from a fixed list and $http_*",
        "the access log line",
    )
    compute_full_forwarded_for: bool = _switch(
        False, "append to the client's X-Forwarded-For instead of replacing it (trusted edge)"
    )
    use_http2: bool = _switch(True, "offer HTTP/2 on the HTTPS listener")
    ssl_protocols: tuple[str, ...] = _setting(
        ("TLSv1.2", "TLSv1.3"),
        "words",
        _words(_TLS_VERSIONS),
        "words of: " + " ".join(_TLS_VERSIONS),
        "TLS versions offered to clients",
        _show_words,
    )
    ssl_ciphers: str | None = _setting(
        None, "text", _ciphers, "OpenSSL cipher list", "TLS ciphers offered to clients (TLS 1.2)"
    )
    global_allowed_response_headers: tuple[str, ...] = field(
        default=(),
        metadata={
            "setting": Setting(
                kind="names",
                parse=_header_names,
                values="comma-separated header names (letters, digits, - and _)",
                meaning="the response headers a custom-headers annotation may set (the names "
                "as written there; none by default)",
                show=_show_names,
                core="the core: custom-headers",
            )
        },
    )

    values: tuple[tuple[str, str], ...] = ()
    source: ObjectRef | None = None

    def get(self, key: str, default: str | None = None) -> str | None:
        """The text the ConfigMap gave ``key`` (valid values only)."""
        for k, v in self.values:
            if k == key:
                return v
        return default

    @property
    def given(self) -> frozenset[str]:
        """The keys the ConfigMap set to a valid value."""
        return frozenset(k for k, _v in self.values)


def _allow_list() -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for f in fields(GlobalSettings):
        spec = f.metadata.get("setting")
        if spec is not None:
            assert f.default is not MISSING
            key = f.name.replace("_", "-")
            out[key] = replace(spec, key=key, attr=f.name, default=f.default)
    return out


SETTINGS: Mapping[str, Setting] = _allow_list()
"""The allow-list: ConfigMap key -> :class:`Setting`, in the order of GlobalSettings' fields."""


@dataclass(frozen=True, slots=True)
class SettingIssue:
    """A key :func:`parse_settings` ignored: ``reason`` is the Problem reason
    (``InvalidSetting``, ``UnknownSetting``, ``UnsupportedSetting``)."""

    key: str
    message: str
    reason: str


@dataclass(frozen=True, slots=True)
class SettingsSupport:
    """The keys the selected backend applies (its ``BackendInfo.settings``): a key the
    ConfigMap sets outside them is reported as not applied by ``backend``."""

    backend: str
    keys: frozenset[str]


def default_text(spec: Setting) -> str:
    """The default of ``spec`` as the ConfigMap would write it, or ``the backend's``."""
    if spec.default == ():
        return "none"
    return "the backend's" if spec.default is None else spec.show(spec.default)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def parse_settings(
    data: Mapping[Any, Any],
    source: ObjectRef | None = None,
    support: SettingsSupport | None = None,
) -> tuple[GlobalSettings, tuple[SettingIssue, ...]]:
    """The typed settings of a ConfigMap's ``data`` and one issue per key ignored. Pure.

    Invalid values leave the key at its default; unknown keys are ignored; with ``support``,
    a valid key the backend does not apply is reported (it is still parsed and kept)."""
    typed: dict[str, Any] = {}
    given: list[tuple[str, str]] = []
    issues: list[SettingIssue] = []
    for key in sorted(data, key=str):
        value = data[key]
        if not isinstance(key, str) or not _KEY.match(key):
            issues.append(
                SettingIssue(
                    str(key),
                    "key must be lowercase letters, digits and '-'; ignored",
                    "InvalidSetting",
                )
            )
            continue
        if (
            not isinstance(value, str)
            or len(value) > MAX_VALUE_LENGTH
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
        ):
            message = f"value must be printable text of at most {MAX_VALUE_LENGTH} characters"
            issues.append(SettingIssue(key, message + "; ignored", "InvalidSetting"))
            continue
        spec = SETTINGS.get(key)
        if spec is None:
            issues.append(
                SettingIssue(key, "not a setting of polyingress; ignored", "UnknownSetting")
            )
            continue
        try:
            typed[spec.attr] = spec.parse(value)
        except ValueError as exc:
            default = default_text(spec)
            message = f"{_shown(value)}: {exc}; ignored, the default ({default}) is used"
            issues.append(SettingIssue(key, message, "InvalidSetting"))
            continue
        given.append((key, value))
        if support is not None and key not in support.keys and not spec.core:
            issues.append(
                SettingIssue(
                    key,
                    f"not applied by the {support.backend} backend; ignored",
                    "UnsupportedSetting",
                )
            )
    return GlobalSettings(**typed, values=tuple(given), source=source), tuple(issues)


# -- the README table -----------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table(backends: Iterable[tuple[str, Mapping[str, str]]]) -> str:
    """The allow-list as a Markdown table: key, value, default, meaning, then one column per
    backend with what the key sets there (from ``BackendInfo.settings``; ``-`` = not applied).
    The README holds it; a test compares the two."""
    columns = list(backends)
    head = ["key", "value", "default", "meaning", *(name for name, _m in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for key, spec in SETTINGS.items():
        default = default_text(spec) if spec.default is None else f"`{default_text(spec)}`"
        row = [f"`{key}`", spec.values, default, spec.meaning]
        row += [spec.core or applied.get(key, "-") for _name, applied in columns]
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"

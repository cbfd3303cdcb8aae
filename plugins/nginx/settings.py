"""The ConfigMap's proxy-wide settings in nginx's syntax.

The core parses and validates every key once (``polyingress.core.SETTINGS``, the README's
"Global settings" table): the model's :class:`~polyingress.core.GlobalSettings` holds typed
values (durations in milliseconds, sizes in bytes). This module only writes them the way
nginx.conf wants them (:func:`nginx_settings`) and states, for each key, the nginx directives
it sets (:data:`SETTINGS`: the backend's ``BackendInfo.settings``, and the directives an
``nginx -t`` failure is attributed to the ConfigMap by).
"""

from __future__ import annotations

from dataclasses import dataclass

from polyingress.core import GlobalSettings, format_duration, format_size

__all__ = [
    "SETTINGS",
    "WORKER_CONNECTIONS",
    "NginxSetting",
    "NginxSettings",
    "applied_settings",
    "nginx_settings",
]

# nginx's worker_connections where the ConfigMap sets no max-worker-connections (the core's
# default for it is "the backend's").
WORKER_CONNECTIONS = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class NginxSettings:
    """Every setting as nginx.conf writes it (built by :func:`nginx_settings`)."""

    worker_processes: str
    max_worker_connections: int
    worker_shutdown_timeout: str
    error_log_level: str
    keep_alive: str
    keep_alive_requests: int
    client_header_timeout: str
    client_body_timeout: str
    large_client_header_buffers: str
    proxy_body_size: str
    proxy_connect_timeout: str
    proxy_read_timeout: str
    proxy_send_timeout: str
    proxy_buffering: bool
    proxy_buffer_size: str | None
    proxy_next_upstream: tuple[str, ...]
    proxy_next_upstream_tries: int
    upstream_keepalive_connections: int
    upstream_keepalive_timeout: str
    upstream_keepalive_requests: int
    server_tokens: bool
    enable_access_log: bool
    log_format_upstream: str
    compute_full_forwarded_for: bool
    use_http2: bool
    ssl_protocols: tuple[str, ...]
    ssl_ciphers: str | None
    # Keys set from the ConfigMap (for attributing an nginx -t failure to it).
    from_configmap: frozenset[str] = frozenset()


def nginx_settings(s: GlobalSettings) -> NginxSettings:
    """The model's settings in nginx's syntax."""
    count, size = s.large_client_header_buffers
    return NginxSettings(
        worker_processes=str(s.worker_processes) if s.worker_processes else "auto",
        max_worker_connections=s.max_worker_connections or WORKER_CONNECTIONS,
        worker_shutdown_timeout=format_duration(s.worker_shutdown_timeout),
        error_log_level=s.error_log_level,
        keep_alive=format_duration(s.keep_alive),
        keep_alive_requests=s.keep_alive_requests,
        client_header_timeout=format_duration(s.client_header_timeout),
        client_body_timeout=format_duration(s.client_body_timeout),
        large_client_header_buffers=f"{count} {format_size(size)}",
        proxy_body_size=format_size(s.proxy_body_size),
        proxy_connect_timeout=format_duration(s.proxy_connect_timeout),
        proxy_read_timeout=format_duration(s.proxy_read_timeout),
        proxy_send_timeout=format_duration(s.proxy_send_timeout),
        proxy_buffering=s.proxy_buffering,
        proxy_buffer_size=None if s.proxy_buffer_size is None else format_size(s.proxy_buffer_size),
        proxy_next_upstream=s.proxy_next_upstream,
        proxy_next_upstream_tries=s.proxy_next_upstream_tries,
        upstream_keepalive_connections=s.upstream_keepalive_connections,
        upstream_keepalive_timeout=format_duration(s.upstream_keepalive_timeout),
        upstream_keepalive_requests=s.upstream_keepalive_requests,
        server_tokens=s.server_tokens,
        enable_access_log=s.enable_access_log,
        log_format_upstream=s.log_format_upstream,
        compute_full_forwarded_for=s.compute_full_forwarded_for,
        use_http2=s.use_http2,
        ssl_protocols=s.ssl_protocols,
        ssl_ciphers=s.ssl_ciphers,
        from_configmap=s.given & SETTINGS.keys(),
    )


@dataclass(frozen=True, slots=True)
class NginxSetting:
    """A ConfigMap key and the nginx directives it sets (``where`` says more, for the docs)."""

    key: str
    directives: tuple[str, ...]
    where: str = ""

    @property
    def text(self) -> str:
        names = " ".join(f"`{d}`" for d in self.directives)
        return f"{names} {self.where}".strip()


def _setting(key: str, *directives: str, where: str = "") -> NginxSetting:
    return NginxSetting(key, directives or (key.replace("-", "_"),), where)


SETTINGS: dict[str, NginxSetting] = {
    s.key: s
    for s in (
        _setting("worker-processes"),
        _setting(
            "max-worker-connections",
            "worker_connections",
            where=f"(per worker; default {WORKER_CONNECTIONS})",
        ),
        _setting("worker-shutdown-timeout", where="(after a reload, and at stop)"),
        _setting("error-log-level", "error_log"),
        _setting("keep-alive", "keepalive_timeout"),
        _setting("keep-alive-requests", "keepalive_requests"),
        _setting("client-header-timeout"),
        _setting("client-body-timeout"),
        _setting("large-client-header-buffers"),
        _setting("proxy-body-size", "client_max_body_size"),
        _setting("proxy-connect-timeout"),
        _setting("proxy-read-timeout", where="(between two reads)"),
        _setting("proxy-send-timeout"),
        _setting("proxy-buffering"),
        _setting(
            "proxy-buffer-size",
            "proxy_buffer_size",
            "proxy_buffers",
            "proxy_busy_buffers_size",
            where="(default: nginx's)",
        ),
        _setting("proxy-next-upstream"),
        _setting("proxy-next-upstream-tries"),
        _setting("upstream-keepalive-connections", "keepalive", where="(upstream)"),
        _setting("upstream-keepalive-timeout", "keepalive_timeout", where="(upstream)"),
        _setting("upstream-keepalive-requests", "keepalive_requests", where="(upstream)"),
        _setting("server-tokens"),
        _setting("enable-access-log", "access_log"),
        _setting("log-format-upstream", "log_format"),
        _setting("compute-full-forwarded-for", "proxy_set_header", where="X-Forwarded-For"),
        _setting("use-http2", "http2", where="(listen parameter)"),
        _setting("ssl-protocols"),
        _setting("ssl-ciphers", where="(default: nginx's)"),
    )
}


def applied_settings() -> dict[str, str]:
    """``BackendInfo.settings``: each key and what it sets in nginx.conf."""
    return {key: spec.text for key, spec in SETTINGS.items()}

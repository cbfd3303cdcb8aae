"""polyingress core: the public API for backend plugins.

Plugins import only the names exported here (``from polyingress.core import ...``).
"""

from polyingress.core.api import (
    ApplyError,
    ApplyResult,
    BackendInfo,
    HealthReport,
    RenderedConfig,
    RenderedFile,
    RunSettings,
    Stopwatch,
    Timings,
    TransientApplyError,
)
from polyingress.core.argtypes import (
    ip_address,
    non_negative_int,
    non_negative_number,
    port_number,
    positive_number,
)
from polyingress.core.files import FileGuard, write_atomic
from polyingress.core.hookspecs import hookimpl
from polyingress.core.kit import (
    ManagedProcess,
    ProxyBackend,
    backend_plugin,
    command_line,
    find_executable,
    group_members,
    session_members,
    wait_until_served,
)
from polyingress.core.pipeline.builder import Builder, BuildOptions, BuildResult, build_model
from polyingress.core.pipeline.diff import ModelDiff, RouteKey, diff
from polyingress.core.pipeline.gateway import served_features
from polyingress.core.pipeline.model import (
    Answer,
    Backend,
    BackendProtocol,
    Certificate,
    Endpoint,
    HostKind,
    ObjectRef,
    Outcome,
    PathTable,
    PathType,
    Route,
    RouteModel,
    TLSBinding,
    VirtualHost,
    WeightedBackend,
    redirect_status,
)
from polyingress.core.pipeline.problems import Problem, Severity
from polyingress.core.pipeline.requestpath import normalize_request_path
from polyingress.core.pipeline.settings import (
    SETTINGS,
    GlobalSettings,
    Setting,
    SettingsSupport,
    format_duration,
    format_size,
    parse_settings,
    settings_table,
)
from polyingress.core.pipeline.store import ObjectStore, Snapshot
from polyingress.core.reasons import ReloadReason, diff_reasons
from polyingress.core.tls import FALLBACK_NAME, fallback_certificate, self_signed

__all__ = [
    "FALLBACK_NAME",
    "SETTINGS",
    "Answer",
    "ApplyError",
    "ApplyResult",
    "Backend",
    "BackendInfo",
    "BackendProtocol",
    "BuildOptions",
    "BuildResult",
    "Builder",
    "Certificate",
    "Endpoint",
    "FileGuard",
    "GlobalSettings",
    "HealthReport",
    "HostKind",
    "ManagedProcess",
    "ModelDiff",
    "ObjectRef",
    "ObjectStore",
    "Outcome",
    "PathTable",
    "PathType",
    "Problem",
    "ProxyBackend",
    "ReloadReason",
    "RenderedConfig",
    "RenderedFile",
    "Route",
    "RouteKey",
    "RouteModel",
    "RunSettings",
    "Setting",
    "SettingsSupport",
    "Severity",
    "Snapshot",
    "Stopwatch",
    "TLSBinding",
    "Timings",
    "TransientApplyError",
    "VirtualHost",
    "WeightedBackend",
    "backend_plugin",
    "build_model",
    "command_line",
    "diff",
    "diff_reasons",
    "fallback_certificate",
    "find_executable",
    "format_duration",
    "format_size",
    "group_members",
    "hookimpl",
    "ip_address",
    "non_negative_int",
    "non_negative_number",
    "normalize_request_path",
    "parse_settings",
    "port_number",
    "positive_number",
    "redirect_status",
    "self_signed",
    "served_features",
    "session_members",
    "settings_table",
    "wait_until_served",
    "write_atomic",
]

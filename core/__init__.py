"""polyingress core: the public API for backend plugins.

Plugins import only the names exported here (``from polyingress.core import ...``).
"""

from .api import (
    ApplyError,
    ApplyResult,
    BackendInfo,
    HealthReport,
    RenderedConfig,
    RenderedFile,
    RunSettings,
)
from .argtypes import (
    ip_address,
    non_negative_int,
    non_negative_number,
    port_number,
    positive_number,
)
from .builder import Builder, BuildOptions, BuildResult, build_model
from .diff import ModelDiff, RouteKey, diff
from .files import FileGuard, write_atomic
from .hookspecs import hookimpl
from .model import (
    Backend,
    Certificate,
    Endpoint,
    GlobalSettings,
    HostKind,
    ObjectRef,
    PathType,
    Route,
    RouteModel,
    TLSBinding,
    VirtualHost,
)
from .problems import Problem, Severity
from .reasons import ReloadReason, diff_reasons
from .requestpath import normalize_request_path
from .store import ObjectStore, Snapshot
from .tls import FALLBACK_NAME, fallback_certificate, self_signed

__all__ = [
    "FALLBACK_NAME",
    "ApplyError",
    "ApplyResult",
    "Backend",
    "BackendInfo",
    "BuildOptions",
    "BuildResult",
    "Builder",
    "Certificate",
    "Endpoint",
    "FileGuard",
    "GlobalSettings",
    "HealthReport",
    "HostKind",
    "ModelDiff",
    "ObjectRef",
    "ObjectStore",
    "PathType",
    "Problem",
    "ReloadReason",
    "RenderedConfig",
    "RenderedFile",
    "Route",
    "RouteKey",
    "RouteModel",
    "RunSettings",
    "Severity",
    "Snapshot",
    "TLSBinding",
    "VirtualHost",
    "build_model",
    "diff",
    "diff_reasons",
    "fallback_certificate",
    "hookimpl",
    "ip_address",
    "non_negative_int",
    "non_negative_number",
    "normalize_request_path",
    "port_number",
    "positive_number",
    "self_signed",
    "write_atomic",
]

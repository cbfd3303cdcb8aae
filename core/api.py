"""Value types exchanged between the core and backend plugins."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from polyingress.core.pipeline.builder import BuildOptions
from polyingress.core.pipeline.model import ObjectRef
from polyingress.core.reasons import ReloadReason

__all__ = [
    "ApplyError",
    "ApplyResult",
    "BackendInfo",
    "HealthReport",
    "RenderedConfig",
    "RenderedFile",
    "RunSettings",
    "Stopwatch",
    "Timings",
    "TransientApplyError",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """Everything a backend needs to know about this run.

    ``bind`` is the address the proxy listens on; ``workdir`` is the backend's own directory
    (created by the core, owned by the backend). ``options`` holds the values of the options the
    plugin added in ``polyingress_add_options``.
    """

    backend: str
    bind: str = "0.0.0.0"
    http_port: int = 8080
    https_port: int = 8443
    # The ports clients reach the proxy on, where they differ from the listen ports (a Service
    # mapping 443 to 8443): what a redirect's Location names. None: the listen port.
    http_redirect_port: int | None = None
    https_redirect_port: int | None = None
    workdir: Path = Path("workdir")
    health_port: int = 10254
    build: BuildOptions = field(default_factory=BuildOptions)
    options: argparse.Namespace = field(default_factory=argparse.Namespace)

    @property
    def public_http_port(self) -> int:
        """The HTTP port clients reach: ``--http-redirect-port``, else ``--http-port``."""
        return self.http_redirect_port or self.http_port

    @property
    def public_https_port(self) -> int:
        """The HTTPS port clients reach, the one an HTTPS redirect's Location names (443 is left
        out of a URL): ``--https-redirect-port``, else ``--https-port``."""
        return self.https_redirect_port or self.https_port


@dataclass(frozen=True, slots=True)
class Timings:
    """Where the time of one apply went: named parts in seconds, in the order they first ran.

    Backends name their parts after what they did (``render``, ``write``, ``validate``,
    ``reload``, ``runtime``, ``wait-until-served`` ...); the core logs them with each apply.
    """

    parts: tuple[tuple[str, float], ...] = ()

    @property
    def total(self) -> float:
        return sum(seconds for _name, seconds in self.parts)

    def get(self, name: str) -> float:
        return sum(seconds for n, seconds in self.parts if n == name)

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in self.parts)


class Stopwatch:
    """Collects a backend's :class:`Timings`: ``with watch.part("render"): ...``; a part timed
    twice adds up. Not thread-safe (one apply at a time)."""

    def __init__(self) -> None:
        self._parts: dict[str, float] = {}

    def reset(self) -> None:
        self._parts = {}

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - started)

    def add(self, name: str, seconds: float) -> None:
        self._parts[name] = self._parts.get(name, 0.0) + seconds

    def timings(self) -> Timings:
        return Timings(tuple(self._parts.items()))


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyResult:
    """What an apply did. Every reload names why.

    ``reasons`` are codes of the closed vocabulary :class:`ReloadReason`; they label the
    ``polyingress_reloads_total`` metric (a string that is not a member's value is counted as
    ``other``). ``detail`` is free text for the log (what changed, counts, an error message);
    it never becomes a label value. ``timings`` says where the apply's time went (the core logs
    them in its apply line).
    """

    reloaded: bool = False
    reasons: tuple[ReloadReason, ...] = ()
    detail: str = ""
    runtime_changes: int = 0
    # Not part of what the apply did: two equal results may have taken different times.
    timings: Timings = field(default=Timings(), compare=False)


class ApplyError(Exception):
    """The proxy refused a model. ``refs`` are the objects at fault, when known.

    The core keeps serving the last good model and does not retry this one until the input
    changes."""

    def __init__(self, message: str, refs: tuple[ObjectRef, ...] = ()) -> None:
        super().__init__(message)
        self.refs = refs


class TransientApplyError(Exception):
    """The proxy could not take a model *now* (busy, restarting, a socket not yet there): the
    core retries the same model with back-off (at start, up to its retry limit; later, after
    its retry pause). Not a refusal: use :class:`ApplyError` for a model the proxy rejects."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    live: bool
    ready: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendInfo:
    """What ``polyingress plugins`` shows, and the ConfigMap keys the backend applies.

    ``settings`` maps each key of the core's allow-list (:data:`polyingress.core.SETTINGS`)
    the backend applies to what it sets there, in the proxy's words (``proxy_read_timeout``,
    ``timeout server``), with the backend's own default where the core's is None. A key the
    ConfigMap sets outside it is reported as not applied; the README's settings table shows
    the built-in backends' mappings.
    """

    name: str
    version: str
    description: str = ""
    features: tuple[str, ...] = ()
    # The Gateway API features the backend serves, by their upstream names ("HTTPRoute" for
    # the core of HTTPRoute; "HTTPRouteQueryParamMatching", "HTTPRoute303RedirectStatusCode"
    # ...). The core hands HTTPRoute rows only to a backend declaring "HTTPRoute", and a rule
    # using an extended feature the backend does not declare answers 500 (its route's status
    # says why); GatewayClass.status.supportedFeatures lists them. The same declaration gates
    # ingress-nginx annotations: an Ingress row may carry a rewrite, redirect, split, header
    # match, header filter or timeout (translate/annotations.py names the features each
    # annotation needs), and only when the backend declares them. Names with a "/" are
    # polyingress capabilities, not Gateway API features (left out of supportedFeatures;
    # GatewayClass status lists upstream names only): "polyingress.io/BackendProtocolTLS"
    # (core BACKEND_TLS) says the backend reaches a Backend whose protocol is HTTPS or GRPCS
    # over TLS (backend-protocol annotation); parts of the route model the Gateway API has no
    # feature for are named "polyingress.io/<Name>" (ANNOTATION_FEATURES: CookieMatching for
    # Route.cookies; BackendConnectTimeout, BackendSendTimeout and SessionAffinity for
    # Route.connect_timeout, .send_timeout and .affinity, which are optional: a backend
    # without them serves the Ingress without that part, with a warning; SourceRanges,
    # BodySize, BasicAuth and RateLimit for a row's RoutePolicy (core/pipeline/policy.py),
    # which are not: a row whose policy needs one the backend lacks answers 500, never
    # without the policy).
    gateway_features: tuple[str, ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedFile:
    """One file as ``run`` writes it: its name relative to the backend's workdir ('/'-separated,
    no '..'), its exact text (private keys included) and its permission bits."""

    name: str
    text: str
    mode: int = 0o644


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedConfig:
    """Files a backend would write, as (relative name, text), in a stable order.

    ``files`` is what ``polyingress render`` prints: private keys are placeholders there.
    ``written`` are the files exactly as ``run`` writes them into the workdir, keys included,
    each with its mode; ``polyingress render --output DIR`` writes them. A backend that leaves
    ``written`` empty gets ``files`` written, mode 0644 (see :meth:`output`).
    """

    files: tuple[tuple[str, str], ...]
    written: tuple[RenderedFile, ...] = ()

    def text(self) -> str:
        if len(self.files) == 1:
            return self.files[0][1]
        return "".join(f"# ---- {name} ----\n{body}" for name, body in self.files)

    def output(self) -> tuple[RenderedFile, ...]:
        """The files for ``render --output``: ``written``, else ``files`` with mode 0644."""
        if self.written:
            return self.written
        return tuple(RenderedFile(name=name, text=text) for name, text in self.files)

"""The Kubernetes API source, and the runtime that adds status, Events and leader election.

Every kind the builder reads is listed, then watched from the list's resourceVersion, as
client-go's reflector does: watch bookmarks are requested so the resourceVersion stays fresh
on quiet kinds; ``410 Gone``/``Expired`` (the change log was compacted) is answered with a
relist that replaces the kind in the store; any other failure is retried with exponential
backoff (tenacity). Objects are written to the ObjectStore as plain API-JSON dicts (the raw
response bodies, ``managedFields`` dropped), so the builder sees what the manifest source gives.
ConfigMaps are the exception: ``--configmap`` is watched by name, and of the other ConfigMaps
only those a ``custom-headers`` annotation names are stored (configmaps.py).

While the API server is unreachable the store keeps the last state it had: the proxy keeps
serving, ``/readyz`` stays green and ``/healthz`` stays 200 with the source reported degraded
in its text (a restart cannot fix an API outage, and failing liveness on every replica at
once would take the whole ingress tier down). ``polyingress_source_degraded`` is 1 meanwhile.

The Gateway API kinds (GatewayClass, Gateway, HTTPRoute, ReferenceGrant) are CRDs a cluster
may not have. When the API server answers their list with 404, the kind counts as read and
empty: the controller serves Ingresses as usual, says so once in the log and in the text of
``/healthz``, and lists the kind again every ``absent_retry`` seconds, so CRDs installed later
are picked up (and CRDs deleted later empty the kind). The same for a 403 on these kinds and on
Namespaces (an upgrade that did not apply the new RBAC keeps serving Ingresses, and says what
it cannot read). ReferenceGrant is read as v1 where the
CRDs serve it, else as v1beta1; every Gateway API object is stored as
``gateway.networking.k8s.io/v1`` (the CRDs convert between versions without changing a field).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3
from prometheus_client import Counter, Gauge
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from polyingress.core.api import HealthReport
from polyingress.core.argtypes import address_list, namespaced_name, positive_number
from polyingress.core.pipeline.annotations import DEFAULT_PREFIX
from polyingress.core.pipeline.builder import DEFAULT_CONTROLLER_CLASS, BuildResult
from polyingress.core.pipeline.gateway import gateway_addresses
from polyingress.core.pipeline.store import (
    CLUSTER_SCOPED,
    GATEWAY_GROUP,
    GATEWAY_V1,
    ObjectStore,
    Snapshot,
    object_key,
)
from polyingress.core.sources.kubernetes.configmaps import ConfigMapRefs
from polyingress.core.sources.kubernetes.sinks import (
    NamedSink,
    SecretSink,
    StoreSink,
)

if TYPE_CHECKING:
    from kubernetes import client as kclient

    from polyingress.core.sources.kubernetes.events import IngressEvents
    from polyingress.core.sources.kubernetes.gateway_status import GatewayStatusWriter
    from polyingress.core.sources.kubernetes.leader import LeaderElector
    from polyingress.core.sources.kubernetes.status import StatusUpdater

# The kubernetes client takes most of a second to import: it is imported where it is used, so
# that ``polyingress validate``/``render`` and the flag definitions here stay fast.

__all__ = [
    "KubeOptions",
    "KubeRuntime",
    "KubeSource",
    "SourceHealth",
    "StatusDocuments",
    "add_kube_options",
    "api_client",
]

# The Gateway API status to write for a snapshot: documents {"apiVersion", "kind", "metadata":
# {"namespace", "name"}, "status"} of GatewayClasses, Gateways and HTTPRoutes (see
# gateway_status.GatewayStatusWriter).
StatusDocuments = Callable[[Snapshot], Sequence[Mapping[str, Any]]]

log = logging.getLogger("polyingress.kubernetes")

WATCH_EVENTS = Counter(
    "polyingress_source_watch_events_total", "Watch events received", ["kind", "type"]
)
# The watch event types of the API; anything else a server (or a proxy in between) sends is
# counted as "other": a label value must come from a closed set.
WATCH_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})
RELISTS = Counter("polyingress_source_relists_total", "Full lists of a kind", ["kind", "reason"])
SOURCE_ERRORS = Counter("polyingress_source_errors_total", "Failed list/watch calls", ["kind"])
DEGRADED = Gauge("polyingress_source_degraded", "1 while the Kubernetes API is unreachable")

SERVICEACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _transient() -> tuple[type[BaseException], ...]:
    from kubernetes.client.exceptions import ApiException

    return (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


def _version() -> str:
    try:
        return metadata.version("polyingress")
    except metadata.PackageNotFoundError:
        return "0+unknown"


USER_AGENT = f"polyingress/{_version()}"


class _Gone(Exception):
    """The resourceVersion we hold was compacted away: relist."""


class _Absent(Exception):
    """The API server does not serve this kind (404: its CRD is not installed), or does not
    let us read it (403: the RBAC of an older release)."""

    def __init__(self, why: str, *, forbidden: bool) -> None:
        super().__init__(why)
        self.forbidden = forbidden


NOT_SERVED = "not served by the Kubernetes API"
FORBIDDEN = "not allowed to be read (RBAC)"


def _unavailable(exc: Any, spec: KindSpec) -> _Absent | None:
    """The _Absent an API error means for an optional kind, else None."""
    if spec.optional and getattr(exc, "status", None) in (403, 404):
        return _Absent(_describe(exc), forbidden=exc.status == 403)
    return None


class _Stopped(Exception):
    pass


# -- options ----------------------------------------------------------------------------------


def _bool(value: str) -> bool:
    low = value.lower()
    if low in ("1", "t", "true", "yes", "on"):
        return True
    if low in ("0", "f", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean (true/false)")


def add_kube_options(parser: argparse.ArgumentParser) -> None:
    """Flags of the Kubernetes mode (``run`` without ``--manifests``), named as ingress-nginx's."""
    g = parser.add_argument_group("kubernetes (used when --manifests is not given)")
    g.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig to use (default: in-cluster service account, else $KUBECONFIG or "
        "~/.kube/config)",
    )
    g.add_argument(
        "--watch-namespace",
        metavar="NS",
        default=None,
        help="watch Ingresses, Services, EndpointSlices and Secrets in NS only (default: all)",
    )
    g.add_argument(
        "--publish-service",
        type=namespaced_name,
        metavar="NAMESPACE/NAME",
        help="write this Service's load-balancer addresses (node addresses for a NodePort "
        "Service) to status.loadBalancer of the Ingresses served",
    )
    g.add_argument(
        "--publish-status-address",
        type=address_list,
        metavar="ADDR[,ADDR]",
        help="write these IPs/hostnames to status.loadBalancer (overrides --publish-service)",
    )
    g.add_argument(
        "--update-status",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="write Ingress status (default true; --update-status=false to disable)",
    )
    g.add_argument(
        "--election-id",
        default="polyingress-leader",
        metavar="NAME",
        help="name of the coordination.k8s.io Lease used for leader election",
    )
    g.add_argument(
        "--election-namespace",
        default=None,
        metavar="NS",
        help="namespace of the Lease (default: $POD_NAMESPACE, else the pod's namespace)",
    )
    g.add_argument(
        "--lease-duration",
        type=positive_number,
        default=15.0,
        metavar="SECONDS",
        help="leader lease duration; a crashed leader is replaced after about this long "
        "(default 15)",
    )
    g.add_argument(
        "--initial-sync-timeout",
        type=positive_number,
        default=120.0,
        metavar="SECONDS",
        help="give up (exit non-zero) when the first list of every kind takes longer (default 120)",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeOptions:
    """Settings of the Kubernetes mode; ``from_args`` reads them from the parsed flags."""

    kubeconfig: str | None = None
    watch_namespace: str | None = None
    configmap: tuple[str, str] | None = None
    annotations_prefix: str = DEFAULT_PREFIX  # where custom-headers annotations are read
    publish_service: tuple[str, str] | None = None
    publish_status_address: tuple[str, ...] = ()
    update_status: bool = True
    election_id: str = "polyingress-leader"
    election_namespace: str | None = None
    identity: str | None = None
    controller_class: str = DEFAULT_CONTROLLER_CLASS
    backend: str = ""
    lease_duration: float = 15.0
    renew_deadline: float | None = None  # default: 2/3 of lease_duration
    retry_period: float | None = None  # default: lease_duration / 7.5 (client-go's 15s/2s)
    initial_sync_timeout: float = 120.0
    request_timeout: float = 10.0
    watch_timeout: int = 300
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    page_size: int = 500
    status_resync: float = 60.0
    absent_retry: float = 60.0  # how often a kind the API server does not serve is listed again
    publish_refresh: float = 30.0
    event_series_interval: float = 30.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> KubeOptions:
        def get(name: str, default: Any = None) -> Any:
            value = getattr(args, name, None)
            return default if value is None else value

        return cls(
            kubeconfig=get("kubeconfig"),
            watch_namespace=get("watch_namespace"),
            configmap=get("configmap"),
            annotations_prefix=get("annotations_prefix", DEFAULT_PREFIX),
            publish_service=get("publish_service"),
            publish_status_address=tuple(get("publish_status_address", ())),
            update_status=bool(get("update_status", True)),
            election_id=get("election_id", "polyingress-leader"),
            election_namespace=get("election_namespace"),
            controller_class=get("controller_class", DEFAULT_CONTROLLER_CLASS),
            backend=get("backend", ""),
            lease_duration=float(get("lease_duration", 15.0)),
            initial_sync_timeout=float(get("initial_sync_timeout", 120.0)),
        )

    @property
    def renew(self) -> float:
        return (
            self.renew_deadline if self.renew_deadline is not None else self.lease_duration * 2 / 3
        )

    @property
    def retry(self) -> float:
        return self.retry_period if self.retry_period is not None else self.lease_duration / 7.5


def own_namespace(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    env = os.environ.get("POD_NAMESPACE")
    if env:
        return env
    try:
        return SERVICEACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def api_client(
    kubeconfig: str | None = None, *, configuration: kclient.Configuration | None = None
) -> kclient.ApiClient:
    """An ApiClient: explicit configuration, else ``kubeconfig``, else in-cluster, else the
    default kubeconfig. Identifies itself as ``polyingress/<version>``."""
    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    if configuration is None:
        configuration = kclient.Configuration()
        if kubeconfig:
            kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        else:
            try:
                kconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except kconfig.ConfigException:
                kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
    # One quick urllib3 retry covers a stale keep-alive connection; the rest is our backoff.
    if configuration.retries is None:
        configuration.retries = 1
    # Eleven long-running watches plus status, Events and the Lease share the pool.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 24)
    api = kclient.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api


def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an API method and return the JSON body as plain dicts (the API's own form)."""
    resp = call(*args, _preload_content=False, **kwargs)
    try:
        data = resp.data
    finally:
        resp.release_conn()
    return json.loads(data) if data else None


def merge_patch(
    call: Callable[..., Any], name: str, namespace: str, body: Any, timeout: float
) -> Any:
    """A JSON merge patch of one namespaced object (an Event's series, an Ingress's status)."""
    return raw(
        call,
        name,
        namespace,
        body,
        _content_type="application/merge-patch+json",
        _request_timeout=timeout,
    )


# -- the source -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: str
    api_version: str  # as stored (whatever version is listed)
    list_all: Callable[..., Any] | None  # (**kw) -> response; None: namespaced only
    list_ns: Callable[..., Any] | None  # (namespace, **kw) -> response
    namespace: str | None  # the one namespace watched, None: all (or cluster-scoped)
    field_selector: str | None = None
    # The controller works without it (a CRD the cluster may not have, a kind an older RBAC
    # does not grant): a 404 or 403 makes the kind empty, listed again every absent_retry.
    optional: bool = False
    # Listed instead when this one is not served (an older version of the same kind).
    fallback: KindSpec | None = None
    served_as: str = ""  # the apiVersion listed, when it differs from api_version
    # What the objects are read for, when a kind has more than one reflector ("settings":
    # --configmap; "custom-headers": the ConfigMaps Ingresses name, see configmaps.py).
    role: str = ""


GATEWAY_PLURALS = {
    "GatewayClass": "gatewayclasses",
    "Gateway": "gateways",
    "HTTPRoute": "httproutes",
    "ReferenceGrant": "referencegrants",
}


def gateway_kind_spec(
    custom: kclient.CustomObjectsApi,
    kind: str,
    version: str,
    watch_namespace: str | None,
    fallback: KindSpec | None = None,
) -> KindSpec:
    """A Gateway API kind read through the CustomObjectsApi, as ``version``."""
    plural = GATEWAY_PLURALS[kind]
    if kind in CLUSTER_SCOPED:
        list_all = functools.partial(
            custom.list_cluster_custom_object, GATEWAY_GROUP, version, plural
        )
        list_ns = None
        namespace = None
    else:
        list_all = functools.partial(
            custom.list_custom_object_for_all_namespaces, GATEWAY_GROUP, version, plural
        )

        def list_ns(ns: str, **kw: Any) -> Any:
            return custom.list_namespaced_custom_object(GATEWAY_GROUP, version, ns, plural, **kw)

        namespace = watch_namespace
    return KindSpec(
        kind,
        GATEWAY_V1,
        list_all,
        list_ns,
        namespace,
        optional=True,
        fallback=fallback,
        served_as=f"{GATEWAY_GROUP}/{version}",
    )


def kind_specs(
    api: kclient.ApiClient, watch_namespace: str | None, configmap: tuple[str, str] | None
) -> list[KindSpec]:
    from kubernetes import client as kclient

    core = kclient.CoreV1Api(api)
    net = kclient.NetworkingV1Api(api)
    disc = kclient.DiscoveryV1Api(api)
    custom = kclient.CustomObjectsApi(api)
    ns = watch_namespace
    specs = [
        KindSpec("IngressClass", "networking.k8s.io/v1", net.list_ingress_class, None, None),
        KindSpec(
            "Ingress",
            "networking.k8s.io/v1",
            net.list_ingress_for_all_namespaces,
            net.list_namespaced_ingress,
            ns,
        ),
        KindSpec(
            "Service", "v1", core.list_service_for_all_namespaces, core.list_namespaced_service, ns
        ),
        KindSpec(
            "EndpointSlice",
            "discovery.k8s.io/v1",
            disc.list_endpoint_slice_for_all_namespaces,
            disc.list_namespaced_endpoint_slice,
            ns,
        ),
        KindSpec(
            "Secret",
            "v1",
            core.list_secret_for_all_namespaces,
            core.list_namespaced_secret,
            ns,
            role="secrets",  # only SECRET_TYPES are stored: SecretSink
        ),
        # For their labels (allowedRoutes ``from: Selector``); with --watch-namespace only the
        # routes of that namespace are read, so only its labels matter.
        KindSpec(
            "Namespace",
            "v1",
            core.list_namespace,
            None,
            None,
            field_selector=f"metadata.name={ns}" if ns else None,
            optional=True,  # the RBAC of a release before Gateway API did not grant it
        ),
        gateway_kind_spec(custom, "GatewayClass", "v1", ns),
        gateway_kind_spec(custom, "Gateway", "v1", ns),
        gateway_kind_spec(custom, "HTTPRoute", "v1", ns),
        gateway_kind_spec(
            custom,
            "ReferenceGrant",
            "v1",
            ns,
            fallback=gateway_kind_spec(custom, "ReferenceGrant", "v1beta1", ns),
        ),
    ]
    # The ConfigMaps custom-headers annotations name: any of the Ingresses' namespaces (the
    # store keeps only those named, see configmaps.py); optional: the RBAC of a release before
    # it granted only --configmap.
    specs.append(
        KindSpec(
            "ConfigMap",
            "v1",
            core.list_config_map_for_all_namespaces,
            core.list_namespaced_config_map,
            ns,
            optional=True,
            role="custom-headers",
        )
    )
    if configmap is not None:
        specs.append(
            KindSpec(
                "ConfigMap",
                "v1",
                None,
                core.list_namespaced_config_map,
                configmap[0],
                field_selector=f"metadata.name={configmap[1]}",
                role="settings",
            )
        )
    return specs


class Reflector:
    """List then watch one kind into the store, forever, in its own thread."""

    def __init__(
        self,
        spec: KindSpec,
        store: ObjectStore,
        opts: KubeOptions,
        stop: threading.Event,
        on_state: Callable[[], None],
        sink: StoreSink | None = None,
    ) -> None:
        self.spec = spec
        self.active = spec  # the variant listed (spec, or its fallback)
        self.store = store
        self.sink = sink if sink is not None else StoreSink(store)
        self.opts = opts
        self._stop = stop
        self._on_state = on_state
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.absent = False  # the API server does not serve the kind (optional kinds only)
        self.forbidden = False  # ... because the RBAC does not allow it (403)
        self.quiet = True  # until the first sync of every kind: KubeSource logs what is absent
        self.healthy = True
        self.error: str | None = None
        self.failing_since: float | None = None
        self.relists = 0
        self._response: Any = None
        self._lock = threading.Lock()
        name = f"watch-{spec.kind}" + (f"-{spec.role}" if spec.role else "")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def interrupt(self) -> None:
        """Break the blocking read of the current watch (called from another thread)."""
        with self._lock:
            resp = self._response
        if resp is not None:
            shutdown = getattr(resp, "shutdown", None)
            try:
                if shutdown is not None:
                    shutdown()
                resp.close()
            except Exception:  # best effort: the thread also checks the stop event
                log.debug("closing the %s watch failed", self.spec.kind, exc_info=True)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # -- state ---------------------------------------------------------------------------------

    def _ok(self) -> None:
        if not self.healthy:
            log.info("%s: connected to the API server again", self.spec.kind)
        self.healthy, self.error, self.failing_since = True, None, None
        self._on_state()

    def _failed(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        SOURCE_ERRORS.labels(self.spec.kind).inc()
        text = _describe(exc)
        if self.healthy:
            self.failing_since = time.time()
        self.healthy, self.error = False, text
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s: list/watch failed (%s); keeping the last state, retrying in %.1fs",
            self.spec.kind,
            text,
            wait,
        )
        self._on_state()

    # -- list and watch ------------------------------------------------------------------------

    def _call(self, **kwargs: Any) -> Any:
        spec = self.active
        if spec.field_selector:
            kwargs["field_selector"] = spec.field_selector
        if spec.namespace is not None and spec.list_ns is not None:
            return spec.list_ns(spec.namespace, _preload_content=False, **kwargs)
        assert spec.list_all is not None
        return spec.list_all(_preload_content=False, **kwargs)

    def _normalize(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["kind"] = self.spec.kind
        obj["apiVersion"] = self.spec.api_version
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        return obj

    def list(self) -> None:
        from kubernetes.client.exceptions import ApiException

        items: list[dict[str, Any]] = []
        cont: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": self.opts.page_size,
                "_request_timeout": self.opts.request_timeout,
            }
            if cont:
                kwargs["_continue"] = cont
            try:
                resp = self._call(**kwargs)
            except ApiException as exc:
                if exc.status == 410:
                    raise _Gone(str(exc.reason)) from exc
                if exc.status == 404 and not cont and self.active.fallback is not None:
                    self.active = self.active.fallback  # an older version may be served
                    continue
                unavailable = _unavailable(exc, self.spec)
                if unavailable is not None:
                    raise unavailable from exc
                raise
            try:
                body = json.loads(resp.data)
            finally:
                resp.release_conn()
            items.extend(self._normalize(o) for o in body.get("items") or [])
            meta = body.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                break
        scope = None if self.spec.kind in CLUSTER_SCOPED else self.spec.namespace
        self.sink.replace(self.spec.kind, items, scope)
        self.resource_version = meta.get("resourceVersion") or None
        self.relists += 1
        if self.absent:
            self.absent = self.forbidden = False
            log.info(
                "%s: served by the API server now (%s); reading it",
                self.spec.kind,
                self.active.served_as or self.spec.api_version,
            )
        self.synced.set()
        self._ok()
        log.debug(
            "%s: listed %d at resourceVersion %s", self.spec.kind, len(items), self.resource_version
        )

    def watch(self) -> None:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch.watch import iter_resp_lines

        timeout = self.opts.watch_timeout
        try:
            resp = self._call(
                watch=True,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
                # connect timeout; read timeout a little longer than the server-side one
                _request_timeout=(self.opts.request_timeout, timeout + 30),
            )
        except ApiException as exc:
            if exc.status == 410:
                raise _Gone(str(exc.reason)) from exc
            unavailable = _unavailable(exc, self.spec)
            if unavailable is not None:
                raise unavailable from exc
            raise
        with self._lock:
            self._response = resp
        self._ok()
        started, events = time.monotonic(), 0
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    return
                if line:
                    events += 1
                    self._event(json.loads(line))
        except _Gone:
            raise
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            # The established stream broke (API restart, proxy timeout): watch again at once
            # from the last resourceVersion; a refused connection then backs off.
            if not self._stop.is_set():
                log.info("%s: watch interrupted (%s); resuming", self.spec.kind, _describe(exc))
        finally:
            with self._lock:
                self._response = None
            resp.release_conn()
        if not events and time.monotonic() - started < 1.0:
            # A server (or proxy in between) that ends every watch at once must not make us
            # spin: pause before watching again.
            self._stop.wait(self.opts.backoff_initial)

    def _event(self, event: Mapping[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        etype = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            return
        WATCH_EVENTS.labels(self.spec.kind, etype if etype in WATCH_TYPES else "other").inc()
        if etype == "ERROR":
            code = obj.get("code")
            if code in (410, "410") or obj.get("reason") in ("Expired", "Gone"):
                raise _Gone(str(obj.get("message")))
            raise ApiException(status=code or 500, reason=str(obj.get("message")))
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if etype == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        obj = self._normalize(obj)
        if etype in ("ADDED", "MODIFIED"):
            self.sink.upsert(obj)
        elif etype == "DELETED":
            key = object_key(obj)
            if key is not None:
                self.sink.delete(key)
        if rv:
            self.resource_version = rv

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _session(self) -> None:
        if self._stop.is_set():
            raise _Stopped
        try:
            if self.resource_version is None:
                self.list()
            self.watch()
        except _Gone as exc:
            log.info("%s: resourceVersion expired (%s); relisting", self.spec.kind, exc)
            RELISTS.labels(self.spec.kind, "expired").inc()
            self.resource_version = None
        except _Absent as exc:
            self._absent(str(exc), forbidden=exc.forbidden)

    def _absent(self, why: str, *, forbidden: bool) -> None:
        """The kind is not served (its CRD is not installed, or was deleted) or not allowed:
        it is read as empty, and listed again every ``absent_retry`` seconds."""
        first = not self.absent or self.forbidden != forbidden
        self.absent, self.forbidden = True, forbidden
        self.active = self.spec
        self.resource_version = None
        scope = None if self.spec.kind in CLUSTER_SCOPED else self.spec.namespace
        self.sink.replace(self.spec.kind, [], scope)
        self.synced.set()
        self._ok()
        if first and not self.quiet:
            log.warning(
                "%s: %s (%s); read as empty, checked again every %gs",
                self.spec.kind,
                FORBIDDEN if forbidden else f"{NOT_SERVED}: its CRD is not installed",
                why,
                self.opts.absent_retry,
            )
        self._stop.wait(self.opts.absent_retry)

    def _run(self) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(_transient()),
            wait=wait_exponential(multiplier=self.opts.backoff_initial, max=self.opts.backoff_max)
            + wait_random(0, self.opts.backoff_initial),
            stop=lambda _state: self._stop.is_set(),
            sleep=self._sleep,
            before_sleep=self._failed,
            reraise=True,
        )
        while not self._stop.is_set():
            try:
                retrying(self._session)
            except _Stopped:
                return
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.exception("%s: unexpected error in the watch loop", self.spec.kind)
                self.healthy, self.error = False, _describe(exc)
                self._stop.wait(self.opts.backoff_max)


def _describe(exc: BaseException | None) -> str:
    from kubernetes.client.exceptions import ApiException

    if exc is None:
        return "unknown error"
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}".strip()
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return f"{type(exc.reason).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """``ok`` is False while the API is unreachable; ``absent`` names the kinds the API server
    does not serve (not a failure: a cluster without the Gateway API CRDs)."""

    ok: bool
    synced: bool
    detail: str = ""
    absent: tuple[str, ...] = ()


class KubeSource:
    """The reflectors of every kind; ``start()`` lists everything before returning."""

    def __init__(self, api: kclient.ApiClient, store: ObjectStore, opts: KubeOptions) -> None:
        self.api = api
        self.store = store
        self.opts = opts
        self._stop = threading.Event()
        self.configmap_refs = ConfigMapRefs(
            store, self._configmap, prefix=opts.annotations_prefix, settings=opts.configmap
        )
        self.reflectors = [
            Reflector(spec, store, opts, self._stop, self._state_changed, self._sink(spec))
            for spec in kind_specs(api, opts.watch_namespace, opts.configmap)
        ]

    def _sink(self, spec: KindSpec) -> StoreSink:
        if spec.role == "custom-headers":
            return self.configmap_refs.configmaps
        if spec.role == "settings" and self.opts.configmap is not None:
            return NamedSink(self.store, ("ConfigMap", *self.opts.configmap))
        if spec.kind == "Ingress":
            return self.configmap_refs.ingresses
        if spec.role == "secrets":
            return SecretSink(self.store)
        return StoreSink(self.store)

    def _configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One ConfigMap, read when an Ingress starts naming it (a list with the field
        selector metadata.name: the verb the ConfigMap watch needs anyway)."""
        from kubernetes import client as kclient
        from kubernetes.client.exceptions import ApiException

        core = kclient.CoreV1Api(self.api)
        try:
            body = raw(
                core.list_namespaced_config_map,
                namespace,
                field_selector=f"metadata.name={name}",
                _request_timeout=self.opts.request_timeout,
            )
        except ApiException as exc:
            if exc.status not in (403, 404):
                raise  # retried: the Ingress waits for its ConfigMap
            log.warning("ConfigMap %s/%s: HTTP %s %s", namespace, name, exc.status, exc.reason)
            return None
        for obj in (body or {}).get("items") or []:
            if isinstance(obj, dict):
                obj["kind"], obj["apiVersion"] = "ConfigMap", "v1"
                meta = obj.get("metadata")
                if isinstance(meta, dict):
                    meta.pop("managedFields", None)
                return obj
        return None

    def _state_changed(self) -> None:
        DEGRADED.set(0 if all(r.healthy for r in self.reflectors) else 1)

    def absent(self) -> tuple[str, ...]:
        """The kinds read as empty because the API server does not serve them (their CRDs are
        not installed) or does not let us read them (403)."""
        return tuple(r.spec.kind for r in self.reflectors if r.absent)

    def _absent_note(self) -> str:
        every = f"checked again every {self.opts.absent_retry:g}s"
        missing = [r.spec.kind for r in self.reflectors if r.absent and not r.forbidden]
        denied = [r.spec.kind for r in self.reflectors if r.absent and r.forbidden]
        notes = []
        if missing:
            notes.append(f"{NOT_SERVED}: {', '.join(missing)} (CRDs not installed; {every})")
        if denied:
            notes.append(
                f"{FORBIDDEN}: {', '.join(denied)} (apply the RBAC of this release, "
                f"deploy/base/rbac.yaml; {every})"
            )
        return "; ".join(notes)

    def start(self, wait: bool = True) -> None:
        for r in self.reflectors:
            r.quiet = wait  # what the first lists do not find is said below, in one line
            r.start()
        if wait and not self.wait_synced(self.opts.initial_sync_timeout):
            missing = ", ".join(
                f"{r.spec.kind} ({r.error or 'pending'})"
                for r in self.reflectors
                if not r.synced.is_set()
            )
            self.stop()
            raise RuntimeError(
                f"the first list from the Kubernetes API did not complete within "
                f"{self.opts.initial_sync_timeout:g}s: {missing}"
            )
        if wait:
            # One line for what the first lists did not find (the Gateway API CRDs, in a
            # cluster without them); each reflector says on its own when that changes later.
            note = self._absent_note()
            if note:
                log.warning("%s; the other kinds are served", note)
            for r in self.reflectors:
                r.quiet = False

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(r.synced.wait(max(0.0, deadline - time.monotonic())) for r in self.reflectors)

    def stop(self) -> None:
        self._stop.set()
        for r in self.reflectors:
            r.interrupt()
        for r in self.reflectors:
            r.join(timeout=5)

    def health(self) -> SourceHealth:
        synced = all(r.synced.is_set() for r in self.reflectors)
        bad = [r for r in self.reflectors if not r.healthy]
        note = self._absent_note()
        absent = self.absent()
        if not bad:
            return SourceHealth(ok=True, synced=synced, detail=note, absent=absent)
        since = min(r.failing_since or time.time() for r in bad)
        kinds = ", ".join(r.spec.kind for r in bad)
        detail = (
            f"source degraded: Kubernetes API unreachable for {time.time() - since:.0f}s "
            f"({kinds}: {bad[0].error}); serving the last known state"
        )
        detail = "; ".join(d for d in (detail, note) if d)
        return SourceHealth(ok=False, synced=synced, detail=detail, absent=absent)


# -- the runtime --------------------------------------------------------------------------------


def _identity(explicit: str | None) -> str:
    if explicit:
        return explicit
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


@dataclass
class _Hooks:
    """Remembers the last BuildResult for the callbacks that run after an apply."""

    last_build: BuildResult | None = None


class KubeRuntime:
    """Kubernetes mode: the API source, leader election, Ingress status and Events.

    ``start(store, controller)`` lists every kind into ``store`` (blocking until done),
    starts watching, tries once to become leader, and hooks status and Events to
    ``controller``; call it before ``controller.start()`` so the first model served is the
    cluster's. ``stop()`` stops everything and releases the lease.

    The leader writes the Gateway API status each build computes (``BuildResult.statuses``;
    see gateway_status.py), unless ``--update-status=false``; ``gateway_statuses(snapshot)``,
    if given, computes the documents instead.
    """

    def __init__(
        self,
        opts: KubeOptions,
        api: kclient.ApiClient | None = None,
        *,
        gateway_statuses: StatusDocuments | None = None,
    ) -> None:
        self.opts = opts
        self.api = api if api is not None else api_client(opts.kubeconfig)
        self.identity = _identity(opts.identity)
        # The identity in the User-Agent tells replicas apart in the API server's audit log.
        self.api.user_agent = f"{USER_AGENT} ({self.identity})"
        self.namespace = own_namespace(opts.election_namespace)
        self.source: KubeSource | None = None
        self.elector: LeaderElector | None = None
        self.status: StatusUpdater | None = None
        self.gateway_statuses = gateway_statuses
        self.gateway_status: GatewayStatusWriter | None = None
        self.events: IngressEvents | None = None
        self._hooks = _Hooks()

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, *, gateway_statuses: StatusDocuments | None = None
    ) -> KubeRuntime:
        return cls(KubeOptions.from_args(args), gateway_statuses=gateway_statuses)

    def start(self, store: ObjectStore, controller: Any) -> None:
        from polyingress.core.sources.kubernetes.events import EventRecorder, IngressEvents
        from polyingress.core.sources.kubernetes.gateway_status import GatewayStatusWriter
        from polyingress.core.sources.kubernetes.leader import LeaderElector
        from polyingress.core.sources.kubernetes.status import StatusUpdater

        opts = self.opts
        elector = self.elector = LeaderElector(
            self.api,
            namespace=self.namespace,
            name=opts.election_id,
            identity=self.identity,
            lease_duration=opts.lease_duration,
            renew_deadline=opts.renew,
            retry_period=opts.retry,
            request_timeout=opts.request_timeout,
        )
        recorder = EventRecorder(
            self.api,
            leader=elector,
            controller=opts.controller_class,
            instance=self.identity,
            series_interval=opts.event_series_interval,
            request_timeout=opts.request_timeout,
        )
        self.events = IngressEvents(recorder, store, backend=opts.backend)
        if opts.update_status and (opts.publish_service or opts.publish_status_address):
            self.status = StatusUpdater(
                self.api,
                store,
                leader=elector,
                publish_service=opts.publish_service,
                publish_addresses=opts.publish_status_address,
                resync=opts.status_resync,
                publish_refresh=opts.publish_refresh,
                request_timeout=opts.request_timeout,
            )
        elif opts.update_status:
            log.info("no --publish-service or --publish-status-address: Ingress status not written")
        if opts.update_status:
            self.gateway_status = GatewayStatusWriter(
                self.api,
                store,
                leader=elector,
                statuses=self.gateway_statuses,
                addresses=self._published_addresses,
                controller=opts.controller_class,
                resync=opts.status_resync,
                request_timeout=opts.request_timeout,
            )

        self.source = KubeSource(self.api, store, opts)
        self.source.start(wait=True)

        controller.on_build(self._on_build)
        controller.on_applied(self._on_applied)
        controller.pm.register(self.events.apply_observer(), name="polyingress-kube-events")
        elector.on_change(self._leadership)
        elector.try_once()
        elector.start()
        recorder.start()
        if self.status is not None:
            self.status.start()
        if self.gateway_status is not None:
            self.gateway_status.start()

    def _published_addresses(self) -> list[dict[str, str]] | None:
        """The Gateways' ``status.addresses``: where the Ingresses are published."""
        if self.status is None:
            return None
        entries = self.status.desired_entries()
        if entries is None:
            return None
        return gateway_addresses(v for e in entries for v in e.values())

    def _on_build(self, result: BuildResult) -> None:
        self._hooks.last_build = result
        if self.events is not None:
            self.events.built(result)
        if self.status is not None:
            self.status.update(result)
        if self.gateway_status is not None:
            self.gateway_status.update(result)

    def _on_applied(self, model: Any, result: Any) -> None:
        build = self._hooks.last_build
        if build is not None and self.events is not None:
            self.events.applied(build, model)

    def _leadership(self, leading: bool) -> None:
        if leading and self.status is not None:
            self.status.resync()
        if leading and self.gateway_status is not None:
            self.gateway_status.resync()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
        if self.gateway_status is not None:
            self.gateway_status.stop()
        if self.events is not None:
            self.events.recorder.stop()
        if self.elector is not None:
            self.elector.stop(release=True)
        if self.source is not None:
            self.source.stop()

    def health(self) -> SourceHealth:
        if self.source is None:
            return SourceHealth(ok=True, synced=False, detail="not started")
        return self.source.health()

    def wrap_health(self, report: Callable[[], HealthReport]) -> Callable[[], HealthReport]:
        """The controller's health plus the source's: a degraded source is reported in the
        text of /healthz and /readyz and never fails them (see the module docstring)."""

        def combined() -> HealthReport:
            base = report()
            src = self.health()
            if not src.detail:
                return base
            detail = "; ".join(d for d in (base.detail, src.detail) if d)
            return HealthReport(live=base.live, ready=base.ready, detail=detail)

        return combined

"""The ``status`` of the GatewayClasses, Gateways and HTTPRoutes we serve, written by the leader.

What the status should be is not decided here: every build computes it (``BuildResult.statuses``,
documents ``{"apiVersion", "kind", "metadata": {"namespace", "name"}, "status"}``, what
``polyingress status`` prints), and ``update(result)`` hands it over; a ``statuses(snapshot)``
function given instead computes the documents from the store. This module writes each one's
``status`` subresource, and only when it differs from what the object in the store has:

* before comparing, the desired status gets the defaults the CRDs' schemas give status fields
  (``STATUS_DEFAULTS``; the API server applies them on every write, so a status without them
  would differ from its own stored form forever);
* a condition keeps its ``lastTransitionTime`` while its ``status`` is unchanged (the
  Kubernetes API conventions, ``meta.SetStatusCondition``): a changed reason, message or
  observedGeneration alone is no transition. A new condition, or one whose status changed,
  takes the time the document gives, else now;
* ``status.parents`` of an HTTPRoute is shared with other controllers: their entries (another
  ``controllerName``) are kept as they are, ours are replaced; an HTTPRoute that no longer
  appears in the documents has our entries removed;
* a GatewayClass is written only when its ``controllerName`` is ours, a Gateway only when its
  class is ours;
* a Gateway's ``status.addresses`` are the addresses the Ingresses are published at
  (``--publish-status-address``, else ``--publish-service``'s, through ``addresses()``), as
  ``polyingress status --publish-status-address`` prints them.

Writes are a replace (PUT) of the status subresource with the resourceVersion read: a status
written meanwhile by someone else is a 409 Conflict, answered by reading the object again and
recomputing (tenacity retries conflicts and transient errors a few times; what still fails is
retried ``retry_after`` seconds later). Only the leader writes; the statuses are checked after
every build, on gaining leadership and every ``resync`` seconds.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import urllib3
from kubernetes import client as kclient
from kubernetes.client.exceptions import ApiException
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from polyingress.core.pipeline.gateway import with_addresses
from polyingress.core.pipeline.store import (
    CLUSTER_SCOPED,
    GATEWAY_API_VERSIONS,
    GATEWAY_GROUP,
    ObjectStore,
    Snapshot,
)
from polyingress.core.sources.kubernetes.loop import ResyncLoop
from polyingress.core.sources.kubernetes.source import StatusDocuments, raw
from polyingress.core.sources.kubernetes.status import STATUS_WRITES

__all__ = [
    "STATUS_DEFAULTS",
    "GatewayStatusWriter",
    "StatusDocuments",
    "desired_status",
    "with_status_defaults",
]

log = logging.getLogger("polyingress.status")

Documents = Sequence[Mapping[str, Any]]

PLURALS = {"GatewayClass": "gatewayclasses", "Gateway": "gateways", "HTTPRoute": "httproutes"}


def _pending(*types: str) -> list[dict[str, str]]:
    return [
        {
            "lastTransitionTime": "1970-01-01T00:00:00Z",
            "message": "Waiting for controller",
            "reason": "Pending",
            "status": "Unknown",
            "type": t,
        }
        for t in types
    ]


# The defaults of the status schemas of the Gateway API v1.6.1 standard CRDs, by kind: a path
# below ``status`` ("name[]" walks a list) and the value the API server fills in when missing.
# tests/test_gateway_status.py checks this table against deploy/gateway-api.
STATUS_DEFAULTS: Mapping[str, tuple[tuple[str, Any], ...]] = {
    "GatewayClass": (("conditions", _pending("Accepted")),),
    "Gateway": (
        ("conditions", _pending("Accepted", "Programmed")),
        ("addresses[].type", "IPAddress"),
        ("listeners[].supportedKinds[].group", GATEWAY_GROUP),
    ),
    "HTTPRoute": (
        ("parents[].parentRef.group", GATEWAY_GROUP),
        ("parents[].parentRef.kind", "Gateway"),
    ),
}


def _default(node: Any, parts: Sequence[str], value: Any) -> None:
    if not parts or not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        items = node.get(head[:-2])
        for item in items if isinstance(items, list) else ():
            _default(item, rest, value)
    elif not rest:
        if head not in node:
            node[head] = copy.deepcopy(value)
    else:
        _default(node.get(head), rest, value)


def with_status_defaults(kind: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` (a copy) with the CRD's defaults filled in, as the API server stores it."""
    out = copy.deepcopy(dict(status))
    for path, value in STATUS_DEFAULTS.get(kind, ()):
        _default(out, path.split("."), value)
    return out


def _identity(item: Mapping[str, Any]) -> str | None:
    """What an element of a status list is matched by: a parent by its parentRef and
    controller, a listener by its name, a condition by its type."""
    if "parentRef" in item:
        return json.dumps([item["parentRef"], item.get("controllerName")], sort_keys=True)
    for field in ("name", "type"):
        if isinstance(item.get(field), str):
            return str(item[field])
    return None


def _carry_times(new: Any, old: Any, now: str) -> None:
    """Give every condition in ``new`` its lastTransitionTime: the one in ``old`` while the
    condition's status is the same there, else its own, else ``now``."""
    if isinstance(new, dict):
        for key, value in new.items():
            before = old.get(key) if isinstance(old, Mapping) else None
            if key == "conditions" and isinstance(value, list):
                _carry_conditions(value, before if isinstance(before, list) else [], now)
            else:
                _carry_times(value, before, now)
    elif isinstance(new, list):
        olds = {
            _identity(o): o for o in (old if isinstance(old, list) else ()) if isinstance(o, dict)
        }
        for item in new:
            if isinstance(item, dict):
                _carry_times(item, olds.get(_identity(item)), now)


def _carry_conditions(new: list[Any], old: list[Any], now: str) -> None:
    olds = {c.get("type"): c for c in old if isinstance(c, Mapping)}
    for cond in new:
        if not isinstance(cond, dict):
            continue
        before = olds.get(cond.get("type"))
        if (
            before is not None
            and before.get("status") == cond.get("status")
            and before.get("lastTransitionTime")
        ):
            cond["lastTransitionTime"] = before["lastTransitionTime"]
        elif not cond.get("lastTransitionTime"):
            cond["lastTransitionTime"] = now


def desired_status(
    kind: str,
    current: Mapping[str, Any] | None,
    wanted: Mapping[str, Any],
    controller: str,
    now: str,
) -> dict[str, Any]:
    """The status to store for an object whose status is ``current``, when ``wanted`` is what
    the computation says: defaults filled in, other controllers' route parents kept, the
    lastTransitionTime of unchanged conditions kept."""
    current = current or {}
    out = with_status_defaults(kind, wanted)
    if kind == "HTTPRoute":
        ours = [p for p in out.get("parents") or [] if isinstance(p, Mapping)]
        mine = {_identity(p) for p in ours}
        others = [
            copy.deepcopy(p)
            for p in current.get("parents") or []
            if isinstance(p, Mapping)
            and p.get("controllerName") != controller
            and _identity(p) not in mine
        ]
        out["parents"] = others + ours
    _carry_times(out, current, now)
    return out


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in (409, 429, 500, 502, 503, 504)
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


class Leader(Protocol):
    def is_leader(self) -> bool: ...


Key = tuple[str, str, str]  # kind, namespace ("" for a GatewayClass), name


class GatewayStatusWriter(ResyncLoop):
    """Writes the status documents of the last build, or those ``statuses(snapshot)`` returns
    (see the module docstring)."""

    thread_name = "gateway-status"
    failure = "updating Gateway API status failed"
    retry_on_failure = True

    def __init__(
        self,
        api: kclient.ApiClient,
        store: ObjectStore,
        *,
        leader: Leader,
        controller: str,
        statuses: StatusDocuments | None = None,
        addresses: Callable[[], Sequence[Mapping[str, str]] | None] | None = None,
        resync: float = 60.0,
        request_timeout: float = 10.0,
        retry_after: float = 5.0,
        attempts: int = 4,
        backoff: float = 0.1,
        clock: Callable[[], str] = _now,
    ) -> None:
        super().__init__(
            resync=resync, retry_after=retry_after, stop_timeout=request_timeout * attempts + 1
        )
        self.custom = kclient.CustomObjectsApi(api)
        self.store = store
        self.leader = leader
        self.statuses = statuses
        self.addresses = addresses
        self.controller = controller
        self.request_timeout = request_timeout
        self.attempts = attempts
        self.backoff = backoff
        self.clock = clock
        # What we wrote, per object: (the status, resourceVersion before, resourceVersion after)
        # until the watch brings the object back (no second write of the same status meanwhile,
        # and none when the API server stores it in a form we do not foresee).
        self._written: dict[Key, tuple[dict[str, Any], str, str]] = {}
        self._documents: Documents | None = None  # of the last build
        self._lock = threading.Lock()
        self._told: set[str] = set()
        self.writes = 0

    # -- public --------------------------------------------------------------------------------

    def update(self, result: Any = None) -> None:
        """A new model was built: write its statuses (``result.statuses``; from the writer's
        thread)."""
        documents = getattr(result, "statuses", None)
        if documents is not None:
            with self._lock:
                self._documents = documents
        self.wake()

    def resync(self) -> None:
        self.wake()

    def sync_once(self) -> int:
        """Write every status that differs; returns the number of writes."""
        if not self.leader.is_leader():
            return 0
        self._retry = False
        snapshot = self.store.snapshot()
        if self.statuses is not None:
            documents: Documents | None = self.statuses(snapshot)
        else:
            with self._lock:
                documents = self._documents
        if documents is None:
            return 0  # no build yet
        published = self.addresses() if self.addresses is not None else None
        if published:
            documents = with_addresses(documents, published)
        writes = 0
        seen: set[Key] = set()
        for doc in documents:
            key = self._key(doc)
            if key is None:
                continue
            seen.add(key)
            if self.write(key, doc["status"], snapshot):
                writes += 1
        # Routes no longer in the documents: our parents entries go.
        for (ns, name), route in snapshot.of("HTTPRoute").items():
            key = ("HTTPRoute", ns, name)
            if key in seen:
                continue
            parents = (route.get("status") or {}).get("parents") or []
            ours = any(isinstance(p, Mapping) and self._ours(p) for p in parents)
            if ours and self.write(key, {"parents": []}, snapshot):
                writes += 1
        for key in [k for k in self._written if snapshot.get(*k) is None]:
            del self._written[key]
        return writes

    def write(self, key: Key, wanted: Mapping[str, Any], snapshot: Snapshot) -> bool:
        """Write one object's status if it differs; True when written."""
        kind, ns, name = key
        obj = snapshot.get(kind, ns, name)
        if obj is None or not self._owned(kind, obj, snapshot):
            return False
        refresh = False

        def attempt() -> bool:
            nonlocal obj, refresh
            if refresh:
                obj = self._get(key)
                refresh = False
                if obj is None:
                    return False
            assert obj is not None
            current = obj.get("status") or {}
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            written = self._written.get(key)
            ours = written is not None and rv in written[1:]
            # Written by us at this resourceVersion (the watch has not brought it yet) or
            # stored from our write: what we wrote is the status to compare with.
            base = written[0] if written is not None and ours else current
            status = desired_status(kind, base, wanted, self.controller, self.clock())
            if status == current or (ours and written is not None and status == written[0]):
                return False  # also when the API server stores it in a form of its own:
                # writing it again would never end
            if not self.leader.is_leader():
                return False
            try:
                stored = self._put(key, {**obj, "status": status})
            except ApiException as exc:
                if exc.status == 409:
                    refresh = True
                raise
            after = str(((stored or {}).get("metadata") or {}).get("resourceVersion") or "")
            self._written[key] = (status, rv, after)
            return True

        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=2.0) + wait_random(0, self.backoff),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            done = bool(retrying(attempt))
        except ApiException as exc:
            if exc.status == 404:
                return False  # deleted meanwhile
            STATUS_WRITES.labels("failed").inc()
            self._retry = exc.status != 422
            log.warning(
                "writing the status of %s %s failed: HTTP %s %s%s",
                kind,
                _name(ns, name),
                exc.status,
                exc.reason,
                f": {_message(exc)}" if exc.status == 422 else "",
            )
            return False
        except Exception as exc:
            STATUS_WRITES.labels("failed").inc()
            self._retry = True
            log.warning("writing the status of %s %s failed: %s", kind, _name(ns, name), exc)
            return False
        if done:
            STATUS_WRITES.labels("written").inc()
            self.writes += 1
            log.info("status of %s %s written", kind, _name(ns, name))
        return done

    # -- internals ------------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _ours(self, parent: Mapping[str, Any]) -> bool:
        return parent.get("controllerName") == self.controller

    def _owned(self, kind: str, obj: Mapping[str, Any], snapshot: Snapshot) -> bool:
        if kind == "GatewayClass":
            return (obj.get("spec") or {}).get("controllerName") == self.controller
        if kind == "Gateway":
            name = (obj.get("spec") or {}).get("gatewayClassName")
            cls = snapshot.get("GatewayClass", "", name) if isinstance(name, str) else None
            return cls is not None and self._owned("GatewayClass", cls, snapshot)
        return True

    def _key(self, doc: Mapping[str, Any]) -> Key | None:
        kind = doc.get("kind")
        meta = doc.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        name, ns = meta.get("name"), meta.get("namespace") or ""
        problem = None
        if doc.get("apiVersion") not in GATEWAY_API_VERSIONS or kind not in PLURALS:
            problem = f"not a GatewayClass, Gateway or HTTPRoute: {doc.get('apiVersion')} {kind}"
        elif not isinstance(name, str) or not name or not isinstance(ns, str):
            problem = f"{kind} without metadata.name"
        elif kind not in CLUSTER_SCOPED and not ns:
            problem = f"{kind} {name} without metadata.namespace"
        elif not isinstance(doc.get("status"), Mapping):
            problem = f"{kind} {_name(ns, name)} without a status"
        if problem is not None:
            if problem not in self._told:  # a bug in the computation: said once
                self._told.add(problem)
                log.error("status document ignored: %s", problem)
            return None
        assert isinstance(kind, str) and isinstance(name, str)
        return (kind, "" if kind in CLUSTER_SCOPED else ns, name)

    def _get(self, key: Key) -> dict[str, Any] | None:
        kind, ns, name = key
        try:
            if kind in CLUSTER_SCOPED:
                obj = raw(
                    self.custom.get_cluster_custom_object,
                    GATEWAY_GROUP,
                    "v1",
                    PLURALS[kind],
                    name,
                    _request_timeout=self.request_timeout,
                )
            else:
                obj = raw(
                    self.custom.get_namespaced_custom_object,
                    GATEWAY_GROUP,
                    "v1",
                    ns,
                    PLURALS[kind],
                    name,
                    _request_timeout=self.request_timeout,
                )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if isinstance(obj, dict):
            (obj.get("metadata") or {}).pop("managedFields", None)
            return obj
        return None

    def _put(self, key: Key, body: Mapping[str, Any]) -> Any:
        kind, ns, name = key
        if kind in CLUSTER_SCOPED:
            return raw(
                self.custom.replace_cluster_custom_object_status,
                GATEWAY_GROUP,
                "v1",
                PLURALS[kind],
                name,
                body,
                _request_timeout=self.request_timeout,
            )
        return raw(
            self.custom.replace_namespaced_custom_object_status,
            GATEWAY_GROUP,
            "v1",
            ns,
            PLURALS[kind],
            name,
            body,
            _request_timeout=self.request_timeout,
        )


def _name(ns: str, name: str) -> str:
    return f"{ns}/{name}" if ns else name


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.body or "")
    return str(body.get("message") or "") if isinstance(body, dict) else ""

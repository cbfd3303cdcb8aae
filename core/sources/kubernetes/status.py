"""``status.loadBalancer.ingress`` of the Ingresses we serve.

The addresses come from ``--publish-status-address`` (IPs and hostnames, as given) or from the
``--publish-service`` Service: its ``status.loadBalancer.ingress`` for a LoadBalancer, the
nodes' ExternalIP (else InternalIP) addresses for a NodePort Service (this needs ``list nodes``),
its ``externalIPs`` (else cluster IPs) otherwise.

Only the leader writes, from its own thread, and only when the Ingress's current status (as
watched) differs from the desired one; an Ingress that leaves our class has the addresses we
wrote cleared. Rejected Ingresses keep their status (a transient mistake in an edit would
otherwise flap it). The status is rechecked on every build, on gaining leadership, and every
``resync`` seconds (the published Service's addresses may change without an Ingress event).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kubernetes import client as kclient
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter

from polyingress.core.pipeline.builder import BuildResult
from polyingress.core.pipeline.model import ObjectRef
from polyingress.core.pipeline.store import ObjectStore
from polyingress.core.sources.kubernetes.loop import ResyncLoop
from polyingress.core.sources.kubernetes.source import merge_patch, raw

__all__ = ["StatusUpdater", "addresses_of_service", "lb_entries"]

log = logging.getLogger("polyingress.status")

STATUS_WRITES = Counter(
    "polyingress_status_writes_total",
    "Status writes (Ingress status.loadBalancer; GatewayClass, Gateway, HTTPRoute status)",
    ["outcome"],
)

Entries = tuple[tuple[tuple[str, str], ...], ...]  # hashable form of [{"ip": ...}, ...]


class Leader(Protocol):
    def is_leader(self) -> bool: ...


def lb_entries(addresses: Sequence[str]) -> list[dict[str, str]]:
    """``[{"ip": ...}]`` / ``[{"hostname": ...}]`` in a stable order, duplicates dropped."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for addr in addresses:
        if not addr or addr in seen:
            continue
        seen.add(addr)
        try:
            ipaddress.ip_address(addr)
            out.append({"ip": addr})
        except ValueError:
            out.append({"hostname": addr})
    out.sort(key=lambda e: (0 if "ip" in e else 1, next(iter(e.values()))))
    return out


def _frozen(entries: Sequence[Mapping[str, Any]] | None) -> Entries:
    return tuple(
        sorted(
            tuple(sorted((k, str(v)) for k, v in e.items() if k in ("ip", "hostname")))
            for e in entries or ()
            if isinstance(e, Mapping)
        )
    )


def addresses_of_service(
    api: kclient.ApiClient, namespace: str, name: str, timeout: float
) -> list[str]:
    core = kclient.CoreV1Api(api)
    svc = raw(core.read_namespaced_service, name, namespace, _request_timeout=timeout)
    spec = svc.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    if kind == "LoadBalancer":
        lb = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        found = [e.get("ip") or e.get("hostname") for e in lb]
        return [a for a in found if a] or list(spec.get("externalIPs") or [])
    if kind == "NodePort":
        if spec.get("externalIPs"):
            return list(spec["externalIPs"])
        nodes = raw(core.list_node, _request_timeout=timeout).get("items") or []
        out = []
        for node in nodes:
            addrs = (node.get("status") or {}).get("addresses") or []
            ext = [
                a["address"] for a in addrs if a.get("type") == "ExternalIP" and a.get("address")
            ]
            internal = [
                a["address"] for a in addrs if a.get("type") == "InternalIP" and a.get("address")
            ]
            out.extend(ext or internal)
        return out
    if kind == "ExternalName":
        return [spec["externalName"]] if spec.get("externalName") else []
    return list(spec.get("externalIPs") or []) or [
        ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"
    ]


class StatusUpdater(ResyncLoop):
    thread_name = "status"
    failure = "updating Ingress status failed"

    def __init__(
        self,
        api: kclient.ApiClient,
        store: ObjectStore,
        *,
        leader: Leader,
        publish_service: tuple[str, str] | None = None,
        publish_addresses: Sequence[str] = (),
        resync: float = 60.0,
        publish_refresh: float = 30.0,
        request_timeout: float = 10.0,
        retry_after: float = 5.0,
    ) -> None:
        super().__init__(resync=resync, retry_after=retry_after, stop_timeout=request_timeout + 1)
        self.api = api
        self.net = kclient.NetworkingV1Api(api)
        self.store = store
        self.leader = leader
        self.publish_service = publish_service
        self.publish_addresses = tuple(publish_addresses)
        self.publish_refresh = publish_refresh
        self.request_timeout = request_timeout
        self.ours: dict[ObjectRef, Entries] = {}  # what we wrote, per Ingress
        self._pending: dict[ObjectRef, tuple[Entries, str]] = {}  # written at store rv
        self._result: BuildResult | None = None
        self._published: tuple[list[dict[str, str]], float] | None = None
        self._lock = threading.Lock()
        self.writes = 0

    # -- public --------------------------------------------------------------------------------

    def update(self, result: BuildResult) -> None:
        with self._lock:
            self._result = result
        self.wake()

    def resync(self) -> None:
        with self._lock:
            self._published = None
        self.wake()

    # -- internals ------------------------------------------------------------------------------

    def desired_entries(self) -> list[dict[str, str]] | None:
        if self.publish_addresses:
            return lb_entries(self.publish_addresses)
        if self.publish_service is None:
            return None
        now = time.monotonic()
        cached = self._published
        if cached is not None and now - cached[1] < self.publish_refresh:
            return cached[0]
        ns, name = self.publish_service
        try:
            entries = lb_entries(addresses_of_service(self.api, ns, name, self.request_timeout))
        except ApiException as exc:
            log.warning("reading --publish-service %s/%s failed: HTTP %s", ns, name, exc.status)
            return cached[0] if cached is not None else None
        except Exception as exc:
            log.warning("reading --publish-service %s/%s failed: %s", ns, name, exc)
            return cached[0] if cached is not None else None
        self._published = (entries, now)
        return entries

    def sync_once(self) -> int:
        """Write every status that differs; returns the number of writes."""
        if not self.leader.is_leader():
            return 0
        with self._lock:
            result = self._result
        if result is None:
            return 0
        desired = self.desired_entries()
        if desired is None:
            self._retry = self.publish_service is not None
            return 0
        want = _frozen(desired)
        self._retry = False
        snapshot = self.store.snapshot()
        writes = 0
        for ref in result.served:
            obj = snapshot.get("Ingress", ref.namespace, ref.name)
            if obj is not None and self._write_if_needed(ref, obj, desired, want):
                writes += 1
        for ref in result.ignored:
            obj = snapshot.get("Ingress", ref.namespace, ref.name)
            if obj is None:
                self.ours.pop(ref, None)
                continue
            current = _frozen(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"))
            ours = current and (self.ours.get(ref) == current or current == want)
            if ours and self._write_if_needed(ref, obj, [], ()):
                writes += 1
                self.ours.pop(ref, None)
        live = {(r.namespace, r.name) for r in result.served} | {
            (r.namespace, r.name) for r in result.ignored
        }
        for ref in [r for r in self.ours if (r.namespace, r.name) not in live]:
            del self.ours[ref]
        return writes

    def _write_if_needed(
        self, ref: ObjectRef, obj: Mapping[str, Any], entries: list[dict[str, str]], want: Entries
    ) -> bool:
        current = _frozen(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"))
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if current == want:
            self._pending.pop(ref, None)
            return False
        if self._pending.get(ref) == (want, rv):
            return False  # written already; the watch has not delivered it yet
        if not self.leader.is_leader():
            return False
        body = {"status": {"loadBalancer": {"ingress": entries or None}}}
        try:
            merge_patch(
                self.net.patch_namespaced_ingress_status,
                ref.name,
                ref.namespace,
                body,
                self.request_timeout,
            )
        except ApiException as exc:
            STATUS_WRITES.labels("failed").inc()
            self._retry = exc.status != 404
            if exc.status != 404:
                log.warning(
                    "writing the status of %s failed: HTTP %s %s", ref, exc.status, exc.reason
                )
            return False
        except Exception as exc:
            STATUS_WRITES.labels("failed").inc()
            self._retry = True
            log.warning("writing the status of %s failed: %s", ref, exc)
            return False
        STATUS_WRITES.labels("cleared" if not entries else "written").inc()
        self._pending[ref] = (want, rv)
        if entries:
            self.ours[ref] = want
        self.writes += 1
        what = ", ".join(next(iter(e.values())) for e in entries) or "cleared"
        log.info("status of %s: loadBalancer %s", ref, what)
        return True

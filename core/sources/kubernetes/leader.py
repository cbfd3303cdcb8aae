"""Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Every replica serves traffic; only the leader writes Ingress status and Events. The Lease
``<namespace>/<election-id>`` names its holder; the holder renews it every ``retry_period``.
A candidate takes it over when the holder is empty or when the record has not changed for
``leaseDurationSeconds`` *as observed by the candidate's own clock* (never by comparing the
holder's renewTime with the local clock: the replicas' clocks may disagree). Writes of the
Lease carry its resourceVersion, so of two candidates racing only one succeeds (409 Conflict).

A leader stops writing at once when it loses: ``is_leader()`` is False as soon as a renewal
found another holder, and also, without waiting for the election thread, when the last
successful renewal is older than ``renew_deadline`` (the API server unreachable: by then
another replica may hold the lease). On a graceful stop the lease is released (holder
cleared) so another replica takes over on its next retry; after a crash it takes over once the
lease has expired: at most ``lease_duration`` + 2 x ``retry_period`` after the last renewal.
"""

from __future__ import annotations

import datetime
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as kclient
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

from polyingress.core.sources.kubernetes.source import raw

__all__ = ["LeaderElector"]

log = logging.getLogger("polyingress.leader")

IS_LEADER = Gauge("polyingress_leader", "1 while this replica holds the leader Lease")


def _microtime() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: kclient.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        request_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.coord = kclient.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = max(1, math.ceil(lease_duration))
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.request_timeout = request_timeout
        self.clock = clock
        self.holder: str | None = None
        self.transitions = 0
        self._leading = False
        self._renewed_at = -math.inf
        self._observed: tuple[Any, float] | None = None  # (spec, local time first seen)
        self._callbacks: list[Callable[[bool], None]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failing = False

    # -- public --------------------------------------------------------------------------------

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """``callback(leading)`` on every gain and loss, from the election thread."""
        self._callbacks.append(callback)

    def is_leader(self) -> bool:
        with self._lock:
            return self._leading and self.clock() - self._renewed_at < self.renew_deadline

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop campaigning; with ``release`` a held lease is handed back at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.request_timeout + self.retry_period + 1)
        was_leading = self._leading
        self._set(False)
        if release and was_leading:
            self._release()

    def try_once(self) -> bool:
        """One acquire-or-renew round; returns whether we lead afterwards."""
        ok = self._acquire_or_renew()
        now = self.clock()
        if ok:
            with self._lock:
                self._renewed_at = now
            self._set(True)
        elif self._leading and (
            self.holder not in (None, "", self.identity)
            or now - self._renewed_at >= self.renew_deadline
        ):
            self._set(False)
        return self.is_leader()

    # -- internals ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.retry_period):
            try:
                self.try_once()
            except Exception:  # never let the election thread die
                log.exception("leader election round failed")

    def _set(self, leading: bool) -> None:
        with self._lock:
            changed = leading != self._leading
            self._leading = leading
        IS_LEADER.set(1 if leading else 0)
        if changed:
            log.info(
                "%s is %s the leader (Lease %s/%s)",
                self.identity,
                "now" if leading else "no longer",
                self.namespace,
                self.name,
            )
            for cb in list(self._callbacks):
                try:
                    cb(leading)
                except Exception:
                    log.exception("leadership callback failed")

    def _warn(self, fmt: str, *args: Any) -> None:
        """Warn once per run of failures (an API outage retries every retry_period)."""
        (log.debug if self._failing else log.warning)(fmt, *args)
        self._failing = True

    def _spec(self, *, acquire: bool, transitions: int) -> dict[str, Any]:
        now = _microtime()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = now
        return spec

    def _write(self, what: str, call: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        """Create or replace the Lease; None when that failed (HTTP 409, another replica wrote
        it first, is not worth a warning)."""
        try:
            result: dict[str, Any] = raw(call, *args, _request_timeout=self.request_timeout)
        except ApiException as exc:
            if exc.status != 409:
                self._warn("%s Lease failed: HTTP %s", what, exc.status)
            return None
        except Exception as exc:
            self._warn("%s Lease failed: %s", what, exc)
            return None
        return result

    def _read(self) -> Any:
        """The Lease as JSON (ApiException 404 when there is none)."""
        return raw(
            self.coord.read_namespaced_lease,
            self.name,
            self.namespace,
            _request_timeout=self.request_timeout,
        )

    def _acquire_or_renew(self) -> bool:
        try:
            lease = self._read()
        except ApiException as exc:
            if exc.status != 404:
                self._warn(
                    "reading Lease %s/%s failed: HTTP %s", self.namespace, self.name, exc.status
                )
                return False
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(acquire=True, transitions=0),
            }
            if (
                self._write("creating", self.coord.create_namespaced_lease, self.namespace, body)
                is None
            ):
                return False
            self.holder = self.identity
            return True
        except Exception as exc:
            self._warn("reading Lease %s/%s failed: %s", self.namespace, self.name, exc)
            return False

        self._failing = False
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        self.holder = holder
        now = self.clock()
        if self._observed is None or self._observed[0] != spec:
            self._observed = (spec, now)
        duration = spec.get("leaseDurationSeconds") or self.lease_seconds
        if holder and holder != self.identity and self._observed[1] + duration > now:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        acquire = holder != self.identity
        new_spec = dict(spec)
        new_spec.update(
            self._spec(acquire=acquire, transitions=transitions + (1 if acquire else 0))
        )
        body = dict(lease)
        body["spec"] = new_spec
        updated = self._write(
            "updating", self.coord.replace_namespaced_lease, self.name, self.namespace, body
        )
        if updated is None:
            return False
        self.holder = self.identity
        self.transitions = int((updated.get("spec") or {}).get("leaseTransitions") or 0)
        self._observed = (updated.get("spec") or {}, self.clock())
        return True

    def _release(self) -> None:
        try:
            lease = self._read()
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            lease["spec"] = {
                **spec,
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "renewTime": _microtime(),
            }
            raw(
                self.coord.replace_namespaced_lease,
                self.name,
                self.namespace,
                lease,
                _request_timeout=self.request_timeout,
            )
            log.info("released Lease %s/%s", self.namespace, self.name)
        except Exception as exc:  # the lease then expires by itself
            log.warning("releasing Lease %s/%s failed: %s", self.namespace, self.name, exc)

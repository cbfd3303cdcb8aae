"""The closed vocabulary of reload reasons, shared by every backend.

Each value is a label value of ``polyingress_reloads_total{reason}``: a new value is a new time
series, so the set is closed (an enum), the values are short stable snake_case words, and
whatever a backend wants to say beyond them (counts, names, error messages) goes to
``ApplyResult.detail``, which is logged and never becomes a label.
"""

from __future__ import annotations

import enum

from polyingress.core.pipeline.diff import ModelDiff

__all__ = ["ReloadReason", "diff_reasons"]


class ReloadReason(enum.StrEnum):
    """Why a backend reloaded (or restarted) its proxy: the values of ``ApplyResult.reasons``.

    One vocabulary for every backend; ``polyingress_reloads_total`` counts each reload once
    per reason it names. Members are added rarely and never renamed (dashboards and alerts
    use the values). A reason that is not a member is counted as :attr:`OTHER`.
    """

    START = "start"
    """The proxy was started on the first model (``polyingress_start``)."""

    ROUTES_CHANGED = "routes_changed"
    """Hosts, paths, the default backend or the set of Services routed to changed."""

    ENDPOINTS_CHANGED = "endpoints_changed"
    """A Service's endpoints changed and this backend applies them by reloading (nginx with
    static upstreams, Traefik's file provider)."""

    CERTIFICATES_CHANGED = "certificates_changed"
    """A host's TLS binding or a certificate changed."""

    SETTINGS_CHANGED = "settings_changed"
    """Global settings (the ConfigMap) changed."""

    RUNTIME_CAPACITY = "runtime_capacity"
    """The running proxy has no room left for the change (HAProxy: no spare backend slot for
    a new Service); the reload makes room."""

    RUNTIME_UNSUPPORTED = "runtime_unsupported"
    """The change cannot be made through the proxy's run-time interface (HAProxy: a
    certificate too large for one Runtime API command)."""

    RUNTIME_FAILED = "runtime_failed"
    """A change tried at run time was refused or failed, so the proxy was reloaded instead
    (HAProxy: the Runtime API refused a command; nginx: the Lua endpoint push failed)."""

    RUNTIME_RESTORED = "runtime_restored"
    """Reloaded to make run-time changes possible again after a ``runtime_failed`` fallback
    (nginx: the Lua balancer back after its backoff)."""

    PROCESS_RESTARTED = "process_restarted"
    """The proxy process had exited; an apply started it again on the new model."""

    DRIFT_REPAIRED = "drift_repaired"
    """The proxy's state differed from the model and could not be repaired at run time;
    reloaded from the model (HAProxy's read-back)."""

    OTHER = "other"
    """A reason outside this vocabulary (a backend's free text), or none that the backend
    could name."""

    @classmethod
    def of(cls, value: object) -> ReloadReason:
        """``value`` as a member (a member, or a member's value as a string); :attr:`OTHER`
        for anything else."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        return cls.OTHER


def diff_reasons(diff: ModelDiff, *, endpoints: bool = True) -> tuple[ReloadReason, ...]:
    """The reasons a reload of ``diff`` has, in the order of :class:`ReloadReason`.

    ``endpoints`` False: endpoint changes are made at run time and are no reason. Empty when
    nothing in ``diff`` needs a reload.
    """
    found: set[ReloadReason] = set()
    if diff.routing_changed or diff.backends_added or diff.backends_removed:
        found.add(ReloadReason.ROUTES_CHANGED)
    if endpoints and diff.endpoints_changed:
        found.add(ReloadReason.ENDPOINTS_CHANGED)
    if (
        diff.tls_changed
        or diff.certificates_added
        or diff.certificates_removed
        or diff.certificates_changed
        or diff.default_certificate_changed
    ):
        found.add(ReloadReason.CERTIFICATES_CHANGED)
    if diff.settings_changed:
        found.add(ReloadReason.SETTINGS_CHANGED)
    return tuple(r for r in ReloadReason if r in found)

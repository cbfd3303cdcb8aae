"""Problems found while validating and translating objects, each naming object and field."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from polyingress.core.pipeline.model import ObjectRef

__all__ = ["Problem", "Severity", "ValidationError"]


class Severity(StrEnum):
    ERROR = "error"  # the object is rejected
    WARNING = "warning"  # the object is served, partly or with a fallback


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Problem:
    """One finding, e.g. ``Ingress default/web: spec.rules[0].host: ...``.

    ``reason`` is a short CamelCase word for status and Events (``Rejected``, ``Conflict``,
    ``InvalidSecret``, ``ServiceNotFound`` ...); ``message`` is the full human sentence.
    """

    ref: ObjectRef
    field: str
    message: str
    severity: Severity = Severity.ERROR
    reason: str = "Rejected"

    def __str__(self) -> str:
        where = f"{self.ref}: {self.field}" if self.field else str(self.ref)
        return f"{where}: {self.message}"


class ValidationError(Exception):
    """Raised by validators; carries the Problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem

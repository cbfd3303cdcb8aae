"""``polyingress migrate``: what the annotations of existing Ingresses become here, per backend.

For every Ingress (whatever class it names: a cluster moving from ingress-nginx names
``nginx``), every annotation under ``--annotations-prefix`` or ingress-nginx's prefix is
judged as the controller would serve it on each backend, from the backend's declared Gateway
API features (``BackendInfo.gateway_features``, the same declaration the core acts on):

* ``honoured``: ingress-nginx's documented behaviour, exactly;
* ``partial``: served, with the stated difference;
* ``unsupported``: not served (why; and whether the Ingress is then served without it, has its
  paths answer 500, or is rejected);
* ``invalid``: the value is refused (the Ingress is rejected, as ``run`` would).

Anything but ``honoured`` would change behaviour: the command then exits 1.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from polyingress.core.pipeline.annotations import DEFAULT_PREFIX, NGINX_PREFIX, REGISTRY
from polyingress.core.pipeline.builder import (
    LEGACY_CLASS_ANNOTATION,
    BuildOptions,
    BuildResult,
    build_model,
)
from polyingress.core.pipeline.model import ObjectRef
from polyingress.core.pipeline.problems import Problem, Severity
from polyingress.core.pipeline.store import ObjectStore
from polyingress.core.pipeline.translate.annotations import (
    IngressPolicy,
    Support,
    Verdict,
    policy_of,
)

__all__ = [
    "AnnotationLine",
    "Cell",
    "IngressReport",
    "changes_behaviour",
    "migration_report",
    "render_report",
]

INVALID = "invalid"
# Findings about the cluster's state, not the migration (a Service or Secret not there yet).
_CLUSTER_STATE = frozenset({"BackendNotFound", "InvalidSecret", "CertificateExpired"})


@dataclass(frozen=True, slots=True)
class Cell:
    """One annotation on one backend: honoured, partial, unsupported or invalid, and why."""

    status: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class AnnotationLine:
    key: str
    value: str
    cells: tuple[Cell, ...]  # in the report's backend order


@dataclass(frozen=True, slots=True)
class IngressReport:
    ref: ObjectRef
    ingress_class: str | None
    outcomes: tuple[str, ...]  # per backend: served | paths answer 500 | rejected
    lines: tuple[AnnotationLine, ...]
    notes: tuple[str, ...]  # other findings of the build (canaries unattached, conflicts...)


def _printable(value: Any, limit: int = 60) -> str:
    """A value as the report shows it: one line, printable ASCII (a hostile value cannot
    move the terminal's cursor), shortened."""
    text = value if isinstance(value, str) else repr(value)
    safe = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text[: limit * 2])
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def _key_of(field: str) -> str | None:
    prefix = "metadata.annotations["
    if field.startswith(prefix) and field.endswith("]"):
        inner = field[len(prefix) : -1]
        return inner[1:-1] if len(inner) >= 2 and inner[0] in "'\"" else inner
    return None


def _ours(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an Ingress naming no class (the report judges every Ingress as served)."""
    out = copy.deepcopy(dict(obj))
    spec = out.get("spec")
    if isinstance(spec, dict):
        spec.pop("ingressClassName", None)
    meta = out.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(LEGACY_CLASS_ANNOTATION, None)
    return out


def _class_of(obj: Mapping[str, Any]) -> str | None:
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    cls = spec.get("ingressClassName") if isinstance(spec, Mapping) else None
    ann = meta.get("annotations") if isinstance(meta, Mapping) else None
    legacy = ann.get(LEGACY_CLASS_ANNOTATION) if isinstance(ann, Mapping) else None
    value = cls if cls is not None else legacy
    return None if value is None else str(value)


def _cell(v: Verdict, features: frozenset[str] | None, policy: IngressPolicy) -> Cell:
    if v.support is Support.UNSUPPORTED:
        then = "the Ingress is rejected" if v.severity is Severity.ERROR else "ignored"
        return Cell(Support.UNSUPPORTED.value, f"{v.note}; {then}")
    missing = sorted(v.features - features) if features is not None else []
    if missing:
        core = features is not None and "HTTPRoute" in features
        then = (
            "its paths answer 500" if core and policy.canary is None else "the Ingress is rejected"
        )
        return Cell(
            Support.UNSUPPORTED.value,
            f"needs {', '.join(missing)}, which the backend does not serve; {then}",
        )
    return Cell(v.support.value, v.note)


def _lines(
    obj: Mapping[str, Any],
    backends: Mapping[str, frozenset[str] | None],
    prefix: str,
    ports: tuple[int, int],
) -> tuple[list[AnnotationLine], IngressPolicy | None, list[Problem]]:
    policy, problems = policy_of(obj, prefix=prefix, http_port=ports[0], https_port=ports[1])
    raw = ((obj.get("metadata") or {}).get("annotations")) or {}
    by_key: dict[str, list[Problem]] = {}
    for p in problems:
        key = _key_of(p.field)
        if key is not None:
            by_key.setdefault(key, []).append(p)
    verdicts = {v.name: v for v in policy.verdicts} if policy is not None else {}
    names = list(backends)
    lines: list[AnnotationLine] = []
    for key in sorted(k for k in raw if isinstance(k, str)):
        ns, sep, name = key.partition("/")
        if not sep or ns not in (prefix, NGINX_PREFIX):
            continue
        found = by_key.get(key, [])
        error = next(
            (
                p
                for p in found
                if p.severity is Severity.ERROR and p.reason != "UnsupportedAnnotation"
            ),
            None,
        )
        verdict = verdicts.get(name)
        same: Cell | None = None
        if policy is None:
            same = Cell(INVALID, "the Ingress itself is invalid (see below)")
        elif error is not None:
            same = Cell(INVALID, error.message)
        elif any(p.reason == "EmptyAnnotation" for p in found):
            same = Cell(Support.HONOURED.value, "empty: no effect (as in ingress-nginx)")
        elif any(p.reason == "ConflictingAnnotation" for p in found):
            same = Cell(Support.PARTIAL.value, found[0].message)
        elif name not in REGISTRY:
            why = (
                "snippets are never supported (no free text reaches a proxy)"
                if name.endswith("-snippet")
                else "not an annotation polyingress knows"
            )
            same = Cell(Support.UNSUPPORTED.value, f"{why}; ignored")
        elif verdict is None:
            same = Cell(Support.HONOURED.value, "")
        if same is not None:
            cells = tuple(same for _ in names)
        else:
            assert verdict is not None and policy is not None
            cells = tuple(_cell(verdict, backends[b], policy) for b in names)
        lines.append(AnnotationLine(key, _printable(raw[key]), cells))
    return lines, policy, problems


def _outcome(result: BuildResult, ref: ObjectRef) -> str:
    if ref in result.rejected:
        return "rejected"
    if any(p.ref == ref and p.reason == "UnsupportedValue" for p in result.problems):
        return "paths answer 500"
    return "served" if ref in result.served else "not served"


def migration_report(
    objects: Iterable[Mapping[str, Any]],
    backends: Mapping[str, frozenset[str] | None],
    *,
    prefix: str = DEFAULT_PREFIX,
    ports: tuple[int, int] = (80, 443),
) -> list[IngressReport]:
    """The report for every Ingress among ``objects`` (any class), on each backend of
    ``backends`` (name -> the Gateway API features it serves; None: every feature)."""
    objs = list(objects)
    judged = [_ours(o) if o.get("kind") == "Ingress" else o for o in objs]
    store = ObjectStore()
    store.replace_many(judged, ())
    snapshot = store.snapshot()
    results = {
        name: build_model(
            snapshot,
            BuildOptions(
                watch_ingress_without_class=True,
                annotations_prefix=prefix,
                features=features,
                backend=name,
                http_port=ports[0],
                https_port=ports[1],
            ),
        )
        for name, features in backends.items()
    }
    reports: list[IngressReport] = []
    for original, obj in zip(objs, judged, strict=True):
        if obj.get("kind") != "Ingress":
            continue
        meta = obj.get("metadata") or {}
        ref = ObjectRef(
            kind="Ingress",
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name") or ""),
        )
        lines, _policy, _problems = _lines(obj, backends, prefix, ports)
        notes: dict[str, None] = {}
        for result in results.values():
            for p in result.problems:
                if p.ref == ref and _key_of(p.field) is None and p.reason not in _CLUSTER_STATE:
                    notes[f"{p.severity.value}: {p.field + ': ' if p.field else ''}{p.message}"] = (
                        None
                    )
        reports.append(
            IngressReport(
                ref=ref,
                ingress_class=_class_of(original),
                outcomes=tuple(_outcome(r, ref) for r in results.values()),
                lines=tuple(lines),
                notes=tuple(_printable(n, 300) for n in notes),
            )
        )
    reports.sort(key=lambda r: (r.ref.namespace, r.ref.name))
    return reports


def changes_behaviour(reports: Iterable[IngressReport]) -> bool:
    """Whether anything would behave otherwise than under ingress-nginx."""
    for r in reports:
        if any(o in ("rejected", "paths answer 500") for o in r.outcomes):
            return True
        for line in r.lines:
            if any(c.status != Support.HONOURED.value for c in line.cells):
                return True
    return False


def render_report(reports: Sequence[IngressReport], backends: Sequence[str]) -> str:
    """The report as text: per Ingress, an annotation x backend table and the notes."""
    out: list[str] = []
    counts: dict[str, int] = {}
    for r in reports:
        cls = f" (class {_printable(r.ingress_class)})" if r.ingress_class else " (no class)"
        outcomes = ", ".join(f"{b} {o}" for b, o in zip(backends, r.outcomes, strict=True))
        out.append(f"Ingress {r.ref.namespace}/{r.ref.name}{cls}: {outcomes}")
        if r.lines:
            width = max(len(line.key) for line in r.lines)
            cols = [max(len(b), 11) for b in backends]
            head = "  ".join(b.ljust(w) for b, w in zip(backends, cols, strict=True))
            out.append(f"  {'annotation'.ljust(width)}  {head}".rstrip())
            for line in r.lines:
                row = "  ".join(
                    c.status.ljust(w) for c, w in zip(line.cells, cols, strict=True)
                ).rstrip()
                out.append(f"  {line.key.ljust(width)}  {row}")
                for c in line.cells:
                    counts[c.status] = counts.get(c.status, 0) + 1
            for line in r.lines:
                notes: dict[tuple[str, str], list[str]] = {}
                for b, c in zip(backends, line.cells, strict=True):
                    if c.note:
                        notes.setdefault((c.status, c.note), []).append(b)
                for (status, note), on in notes.items():
                    where = "" if len(on) == len(backends) else f" on {', '.join(on)}"
                    out.append(
                        f"    {line.key.rsplit('/', 1)[-1]} ({line.value}): {status}{where}: {note}"
                    )
        else:
            out.append("  no annotations of ingress-nginx or polyingress")
        out += [f"  {n}" for n in r.notes]
        out.append("")
    total = sum(counts.values())
    summary = ", ".join(
        f"{counts.get(s, 0)} {s}" for s in ("honoured", "partial", "unsupported", INVALID)
    )
    out.append(
        f"{len(reports)} Ingresses; {total} annotation verdicts over {len(backends)} "
        f"backends ({', '.join(backends)}): {summary}"
    )
    return "\n".join(out) + "\n"

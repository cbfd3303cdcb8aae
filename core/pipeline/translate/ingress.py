"""Ingress object -> validated rules (or the problems that reject it)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from polyingress.core.pipeline.model import BackendProtocol, ObjectRef, PathType
from polyingress.core.pipeline.problems import Problem
from polyingress.core.pipeline.regexpath import RegexPath, parse_regex_path
from polyingress.core.pipeline.translate.service import backend_name
from polyingress.core.pipeline.validate import (
    check_dns1035_label,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_host,
    check_path,
    check_port_name,
    check_port_number,
)

__all__ = ["BackendRef", "ParsedIngress", "PathRule", "parse_ingress"]


@dataclass(frozen=True, slots=True)
class BackendRef:
    namespace: str
    service: str
    port: str  # the number as text, or the port name
    port_is_name: bool
    protocol: BackendProtocol = BackendProtocol.HTTP

    @property
    def name(self) -> str:
        """The model backend's name (:func:`backend_name`)."""
        return backend_name(self.namespace, self.service, self.port, self.protocol)


@dataclass(frozen=True, slots=True)
class PathRule:
    host: str | None
    path: str
    path_type: PathType
    backend: BackendRef
    field: str  # spec.rules[i].http.paths[j]
    # With use-regex, an ImplementationSpecific path is a regular expression: the form it has
    # (``path`` is then the Prefix it is served as).
    regex: RegexPath | None = None


@dataclass(frozen=True, slots=True)
class ParsedIngress:
    ref: ObjectRef
    order: tuple[str, str, str]  # (creationTimestamp, namespace, name): oldest wins
    class_name: str | None
    legacy_class: str | None
    rules: tuple[PathRule, ...]
    hosts: tuple[str, ...]  # hosts named in spec.rules (not None)
    tls: tuple[tuple[tuple[str, ...], str | None, str], ...]  # (hosts, secretName, field)
    default_backend: BackendRef | None
    annotations: Mapping[str, str]


_PATH_TYPES = {
    "Exact": PathType.EXACT,
    "Prefix": PathType.PREFIX,
    # Documented: ImplementationSpecific is matched as Prefix (element-wise) on every backend.
    "ImplementationSpecific": PathType.PREFIX,
}


def _parse_backend(
    ns: str, backend: Any, field: str, errors: list[tuple[str, str]]
) -> BackendRef | None:
    if not isinstance(backend, Mapping):
        errors.append(
            (field, "backend is missing" if backend is None else "backend must be an object")
        )
        return None
    if backend.get("resource") is not None:
        errors.append((field + ".resource", "resource backends are not supported"))
        return None
    svc = backend.get("service")
    if not isinstance(svc, Mapping):
        errors.append((field + ".service", "a service backend is required"))
        return None
    name = svc.get("name")
    reason = check_dns1035_label(name, "service name")
    if reason:
        errors.append((field + ".service.name", reason))
        return None
    port = svc.get("port")
    if not isinstance(port, Mapping):
        errors.append((field + ".service.port", "service port is required"))
        return None
    number, pname = port.get("number"), port.get("name")
    if (number is None) == (pname is None):
        errors.append((field + ".service.port", "exactly one of port.number or port.name"))
        return None
    if number is not None:
        reason = check_port_number(number)
        if reason:
            errors.append((field + ".service.port.number", reason))
            return None
        # Interned: the same few field names and port numbers recur in thousands of Ingresses.
        return BackendRef(ns, str(name), sys.intern(str(number)), False)
    reason = check_port_name(pname)
    if reason:
        errors.append((field + ".service.port.name", reason))
        return None
    return BackendRef(ns, str(name), str(pname), True)


def normalize_prefix(path: str) -> str:
    # A trailing slash in a Prefix rule is ignored: /foo/ and /foo are the same rule.
    stripped = path.rstrip("/")
    return stripped or "/"


def parse_ingress(
    obj: Mapping[str, Any], *, regex: bool = False
) -> tuple[ParsedIngress | None, list[Problem]]:
    """Validate an Ingress completely; any error rejects the whole object (and only it).

    ``regex``: the Ingress sets ingress-nginx's ``use-regex``; its ImplementationSpecific paths
    are then regular expressions, accepted in the forms :mod:`regexpath` translates."""
    meta = obj.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    name = str(meta.get("name") or "")
    ref = ObjectRef(kind="Ingress", namespace=ns, name=name)
    errors: list[tuple[str, str]] = []
    reason = check_dns1123_subdomain(name, "name")
    if reason:
        errors.append(("metadata.name", reason))
    # The API server guarantees this; the manifest source has no API server in front of it.
    reason = check_dns1123_label(ns, "namespace")
    if reason:
        errors.append(("metadata.namespace", reason))
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        spec = {}
        errors.append(("spec", "spec is required"))

    annotations_raw = meta.get("annotations") or {}
    annotations: dict[str, str] = {}
    if isinstance(annotations_raw, Mapping):
        for k, v in annotations_raw.items():
            if isinstance(k, str) and isinstance(v, str):
                annotations[k] = v
            else:
                errors.append((f"metadata.annotations[{k!r}]", "annotation values are strings"))

    class_name = spec.get("ingressClassName")
    if class_name is not None:
        reason = check_dns1123_subdomain(class_name, "ingressClassName")
        if reason:
            errors.append(("spec.ingressClassName", reason))

    default_backend = None
    if spec.get("defaultBackend") is not None:
        default_backend = _parse_backend(ns, spec["defaultBackend"], "spec.defaultBackend", errors)

    rules: list[PathRule] = []
    hosts: list[str] = []
    raw_rules = spec.get("rules") or []
    if not isinstance(raw_rules, list):
        errors.append(("spec.rules", "rules must be a list"))
        raw_rules = []
    if not raw_rules and spec.get("defaultBackend") is None:
        errors.append(("spec", "either spec.defaultBackend or spec.rules is required"))
    for i, rule in enumerate(raw_rules):
        rfield = f"spec.rules[{i}]"
        if not isinstance(rule, Mapping):
            errors.append((rfield, "rule must be an object"))
            continue
        host = rule.get("host")
        if host is not None and host != "":
            reason = check_host(host)
            if reason:
                errors.append((rfield + ".host", reason))
                continue
            hosts.append(host)
        else:
            host = None
        http = rule.get("http")
        if http is None:
            continue
        paths = http.get("paths") if isinstance(http, Mapping) else None
        if not isinstance(paths, list) or not paths:
            errors.append((rfield + ".http.paths", "at least one path is required"))
            continue
        for j, p in enumerate(paths):
            pfield = sys.intern(f"{rfield}.http.paths[{j}]")
            if not isinstance(p, Mapping):
                errors.append((pfield, "path must be an object"))
                continue
            ptype_raw = p.get("pathType")
            ptype = _PATH_TYPES.get(ptype_raw) if isinstance(ptype_raw, str) else None
            if ptype is None:
                shown = "is missing" if ptype_raw is None else f"{ptype_raw!r} is not valid"
                errors.append(
                    (
                        pfield + ".pathType",
                        f"pathType {shown}; it must be one of Exact, Prefix, "
                        "ImplementationSpecific",
                    )
                )
                continue
            path = p.get("path", "/" if ptype_raw == "ImplementationSpecific" else None)
            if path is None:
                errors.append((pfield + ".path", f"path is missing (required for {ptype_raw})"))
                continue
            regex_path: RegexPath | None = None
            if regex and ptype_raw == "ImplementationSpecific" and isinstance(path, str):
                try:
                    regex_path = parse_regex_path(path)
                except ValueError as exc:
                    errors.append((pfield + ".path", str(exc)))
                    continue
                path = regex_path.prefix
            reason = check_path(path)
            if reason or not isinstance(path, str):
                errors.append((pfield + ".path", reason or "path must be a string"))
                continue
            backend = _parse_backend(ns, p.get("backend"), pfield + ".backend", errors)
            if backend is None:
                continue
            if ptype is PathType.PREFIX:
                path = normalize_prefix(path)
            rules.append(PathRule(host, path, ptype, backend, pfield, regex_path))

    tls: list[tuple[tuple[str, ...], str | None, str]] = []
    raw_tls = spec.get("tls") or []
    if not isinstance(raw_tls, list):
        errors.append(("spec.tls", "tls must be a list"))
        raw_tls = []
    for i, entry in enumerate(raw_tls):
        tfield = f"spec.tls[{i}]"
        if not isinstance(entry, Mapping):
            errors.append((tfield, "tls entry must be an object"))
            continue
        thosts = entry.get("hosts") or []
        ok_hosts: list[str] = []
        for k, h in enumerate(thosts if isinstance(thosts, list) else []):
            reason = check_host(h)
            if reason:
                errors.append((f"{tfield}.hosts[{k}]", reason))
            else:
                ok_hosts.append(h)
        secret = entry.get("secretName")
        if secret is not None:
            reason = check_dns1123_subdomain(secret, "secretName")
            if reason:
                errors.append((tfield + ".secretName", reason))
                continue
        tls.append((tuple(ok_hosts), secret, tfield))

    if errors:
        return None, [Problem(ref=ref, field=f, message=m) for f, m in errors]

    created = meta.get("creationTimestamp") or ""
    return (
        ParsedIngress(
            ref=ref,
            order=(str(created) if created else "9999", ns, name),
            class_name=class_name,
            legacy_class=annotations.get("kubernetes.io/ingress.class"),
            rules=tuple(rules),
            hosts=tuple(dict.fromkeys(hosts)),
            tls=tuple(tls),
            default_backend=default_backend,
            annotations=annotations,
        ),
        [],
    )

"""Validation of Ingress fields, as the API server does it and stricter where proxies need it.

The manifest source has no API server in front of it, so every rule the API server enforces is
checked here. On top of that, paths are limited to characters that are safe to place in any
proxy's configuration: ingress-nginx was taken over through the path field (CVE-2021-25745,
CVE-2021-25748, CVE-2026-24512), so we never rely on escaping alone.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

__all__ = [
    "check_dns1035_label",
    "check_dns1123_label",
    "check_dns1123_subdomain",
    "check_host",
    "check_path",
    "check_port_name",
    "check_port_number",
]

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# RFC 3986 pchar without pct-encoded and without the sub-delims that proxies treat specially
# ($ ' ; are sub-delims but interpolate, quote or terminate in proxy configs).
_PATH_CHARS = re.compile(r"^/[A-Za-z0-9\-._~!&()*+,=:@/]*$")
_UNSAFE_PATH_CHAR = re.compile(r"[^A-Za-z0-9\-._~!&()*+,=:@/]")

MAX_PATH_LENGTH = 2048


def _describe_char(ch: str) -> str:
    if ch.isspace():
        return "whitespace"
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"control character U+{ord(ch):04X}"
    if ord(ch) > 0x7E:
        return f"non-ASCII character U+{ord(ch):04X}"
    return f"character {ch!r}"


def _non_empty_string(value: Any, what: str, limit: int) -> str | None:
    """The checks every name shares: present, a non-empty string, at most ``limit`` long."""
    if value is None:
        return f"{what} is missing"
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string"
    if len(value) > limit:
        return f"{what} {value[:70]!r} is longer than {limit} characters"
    return None


_LABEL_KINDS = {
    "DNS-1123 label": (
        _LABEL,
        "(lowercase letters, digits and '-', starting and ending with a letter or digit)",
    ),
    "DNS-1035 label": (_LABEL_1035, "(lowercase letters, digits and '-', starting with a letter)"),
}


def _check_label(value: Any, what: str, kind: str) -> str | None:
    problem = _non_empty_string(value, what, 63)
    pattern, rule = _LABEL_KINDS[kind]
    if problem is None and not pattern.fullmatch(value):
        problem = f"{what} {value!r} is not a valid {kind} {rule}"
    return problem


def check_dns1123_label(value: Any, what: str = "name") -> str | None:
    """None when valid, else the reason."""
    return _check_label(value, what, "DNS-1123 label")


def check_dns1035_label(value: Any, what: str = "name") -> str | None:
    return _check_label(value, what, "DNS-1035 label")


def check_dns1123_subdomain(value: Any, what: str = "name") -> str | None:
    problem = _non_empty_string(value, what, 253)
    if problem is not None:
        return problem
    for label in value.split("."):
        if not label or len(label) > 63 or not _LABEL.fullmatch(label):
            return (
                f"{what} {value!r} is not a valid DNS-1123 subdomain "
                "(lowercase labels of letters, digits and '-', separated by '.')"
            )
    return None


def check_host(value: Any) -> str | None:
    """Ingress rule / TLS host: a DNS-1123 subdomain, optionally ``*.`` + subdomain; no IP."""
    if value is None:
        return "host is missing"
    if not isinstance(value, str) or not value:
        return "host must be a non-empty string"
    bad = _UNSAFE_HOST_CHAR.search(value)
    if bad:
        return f"host {value[:80]!r} contains {_describe_char(bad.group())}"
    name = value
    if value.startswith("*."):
        name = value[2:]
        if "." not in name:
            return f"host {value!r}: a wildcard must be followed by at least two labels"
    elif "*" in value:
        return f"host {value!r}: '*' is only allowed as the whole first label ('*.example.com')"
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return f"host {value!r} must be a DNS name, not an IP address"
    reason = check_dns1123_subdomain(name, "host")
    if reason:
        return reason
    return None


_UNSAFE_HOST_CHAR = re.compile(r"[^a-z0-9.*-]")


def check_path(value: Any) -> str | None:
    """An Exact/Prefix/ImplementationSpecific path (all three are held to the same grammar)."""
    if value is None:
        return "path is missing"
    if not isinstance(value, str) or not value:
        return "path must be a non-empty string"
    if not value.startswith("/"):
        return f"path {value[:80]!r} must be absolute (start with '/')"
    if len(value) > MAX_PATH_LENGTH:
        return f"path is {len(value)} characters long, more than {MAX_PATH_LENGTH}"
    bad = _UNSAFE_PATH_CHAR.search(value)
    if bad:
        ch = bad.group()
        if ch == "%":
            return (
                f"path {value[:80]!r} contains percent-encoding; proxies match the decoded "
                "path, write the character itself (encoded slashes are never allowed)"
            )
        return (
            f"path {value[:80]!r} contains {_describe_char(ch)}; "
            "only RFC 3986 path characters are allowed"
        )
    if "//" in value:
        return f"path {value!r} must not contain '//'"
    segments = value.split("/")
    if any(s in (".", "..") for s in segments):
        return f"path {value!r} must not contain '.' or '..' segments"
    return None


def check_port_number(value: Any) -> str | None:
    if value is None:
        return "port number is missing"
    if isinstance(value, bool) or not isinstance(value, int):
        return f"port number {value!r} must be an integer"
    if not 1 <= value <= 65535:
        return f"port number {value} is out of range 1-65535"
    return None


def check_port_name(value: Any) -> str | None:
    """IANA_SVC_NAME: at most 15 chars, lowercase alnum and '-', a letter, no '--'."""
    if value is None:
        return "port name is missing"
    if not isinstance(value, str) or not value:
        return "port name must be a non-empty string"
    if len(value) > 15:
        return f"port name {value[:30]!r} is longer than 15 characters"
    if not _PORT_NAME.fullmatch(value) or "--" in value or not re.search("[a-z]", value):
        return (
            f"port name {value!r} is not a valid IANA service name "
            "(lowercase letters, digits and single '-', at least one letter)"
        )
    return None

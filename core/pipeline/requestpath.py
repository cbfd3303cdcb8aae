"""The request-path rule every backend applies before matching (the single statement of it).

One request must reach the same Service on every proxy, and that Service must receive the path
that was matched. Measured on the three proxies as shipped, ``/x/../admin/x`` or ``/%61dmin/x``
reached the ``/admin`` route on nginx and Traefik but the ``/`` route on HAProxy (which then
forwarded the unresolved path: the classic path-confusion bypass), and ``/admin%2Fx`` went to
``/admin`` on nginx only. So every backend normalizes the same way, before matching:

1. **Refused with 400**: a path holding an encoded slash, backslash or NUL (``%2F``, ``%5C``,
   ``%00``, any case), a raw backslash, or a ``%`` not followed by two hex digits. Decoding
   ``%2F`` would turn one segment into two; keeping it would make the proxy and the Service
   disagree on the segments. Refusing is the portable choice (Envoy's and Istio's
   recommendation).
2. Percent-encoded unreserved characters (RFC 3986 §2.3: ``A-Z a-z 0-9 - . _ ~``) are decoded;
   every other percent-encoding keeps its character encoded, in upper-case hex (§6.2.2.1).
3. Runs of slashes are merged into one, then dot segments are removed (§5.2.4; a ``..`` above
   the root is dropped).
4. The Service receives the normalized path; the query string is passed unchanged.

:func:`normalize_request_path` is the reference the shared routing cases and the fuzzing compare
every live proxy with (tests/test_request_paths.py). Where a proxy cannot follow the rule
exactly, its plugin says so, the README lists the difference, and a test pins it down.
"""

from __future__ import annotations

import re

__all__ = ["normalize_request_path"]

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%(..)?", re.DOTALL)
_HEX = re.compile(r"[0-9A-Fa-f]{2}")
_REFUSED = frozenset({"2F", "5C", "00"})


def normalize_request_path(target: str) -> str | None:
    """The normalized form of a request target's path (query kept as sent), or None for 400.

    >>> normalize_request_path("/x/../%61dmin//y?q=%2F")
    '/admin/y?q=%2F'
    >>> normalize_request_path("/admin%2Fy") is None
    True
    """
    path, sep, query = target.partition("?")
    if not path.startswith("/") or "\\" in path:
        return None
    decoded: list[str] = []
    pos = 0
    for m in _PERCENT.finditer(path):
        digits = m.group(1)
        if digits is None or not _HEX.fullmatch(digits):
            return None
        code = digits.upper()
        if code in _REFUSED:
            return None
        decoded.append(path[pos : m.start()])
        char = chr(int(code, 16))
        decoded.append(char if char in _UNRESERVED else "%" + code)
        pos = m.end()
    decoded.append(path[pos:])
    merged = re.sub(r"/{2,}", "/", "".join(decoded))
    return _remove_dot_segments(merged) + sep + query


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path."""
    out: list[str] = []
    segments = path.split("/")[1:]  # the path starts with "/"
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)

"""ingress-nginx's ``use-regex`` paths, as far as they mean the same on every backend.

With ``use-regex: "true"`` ingress-nginx writes each path of the Ingress as an nginx regex
location ``~* "^<path>"`` (case-insensitive, anchored at the start only) and ``rewrite-target``
may refer to its capture groups (``$1`` ... ``$9``). A general regular expression would need a
regex row in the route model, meaning the same in PCRE (nginx), HAProxy's regex and Go's RE2
(Traefik); that is not built yet. What is translated are the forms real Ingresses use, each
onto an element-wise Prefix row:

* a literal path ``/api`` (letters, digits, ``-._~/``): Prefix ``/api``;
* ``P(/|$)(.*)``: Prefix ``P``; ``$1`` is ``/`` or nothing, ``$2`` what follows ``P/``
  (ingress-nginx's documented rewrite example ``/something(/|$)(.*)`` with ``/$2``);
* ``P/(.*)``: Prefix ``P``; ``$1`` is what follows ``P/``.

Any other regular expression is refused naming the construct found, so no path silently means
something else than it did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RegexForm", "RegexPath", "parse_regex_path"]


class RegexForm(StrEnum):
    LITERAL = "literal"  # /api
    SLASH_OR_END = "slash-or-end"  # /api(/|$)(.*)
    SUBPATH = "subpath"  # /api/(.*)


@dataclass(frozen=True, slots=True)
class RegexPath:
    """A use-regex path: the Prefix it is served as, and its form (what ``$N`` means)."""

    prefix: str
    form: RegexForm
    pattern: str


_LITERAL = r"/[-A-Za-z0-9._~/]*"
_FORMS = (
    (re.compile(rf"^\^?(?P<p>{_LITERAL})$"), RegexForm.LITERAL),
    (re.compile(rf"^\^?(?P<p>(?:{_LITERAL})?)\(/\|\$\)\(\.\*\)$"), RegexForm.SLASH_OR_END),
    (re.compile(rf"^\^?(?P<p>(?:{_LITERAL})?)/\(\.\*\)$"), RegexForm.SUBPATH),
)
_CONSTRUCTS = {
    "(": "a group",
    ")": "a group",
    "[": "a character class",
    "]": "a character class",
    "{": "a repetition count",
    "}": "a repetition count",
    "*": "a repetition",
    "+": "a repetition",
    "?": "an optional part",
    "|": "an alternative",
    "^": "an anchor",
    "$": "an anchor",
    "\\": "an escape",
}


def parse_regex_path(path: str) -> RegexPath:
    """The Prefix a use-regex path is served as, or ValueError naming what is refused."""
    for pattern, form in _FORMS:
        found = pattern.fullmatch(path)
        if found is None:
            continue
        prefix = found.group("p").rstrip("/") or "/"
        segments = prefix.split("/")
        if "//" in found.group("p") or any(s in (".", "..") for s in segments):
            raise ValueError(f"regular expression path {path!r}: '//', '.' or '..' segments")
        return RegexPath(prefix=prefix, form=form, pattern=path)
    bad = next((c for c in path if c in _CONSTRUCTS), None)
    if bad is not None:
        what = f"{_CONSTRUCTS[bad]} ({bad!r})"
    else:
        what = next(
            (f"the character {c!r}" for c in path if not re.match(r"[-A-Za-z0-9._~/]", c)),
            "its form",
        )
    raise ValueError(
        f"regular expression path {path[:80]!r}: {what} is not supported; only P, "
        "P(/|$)(.*) and P/(.*) with P a literal path are translated (the same on every "
        "backend)"
    )

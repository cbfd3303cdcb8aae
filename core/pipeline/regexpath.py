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

__all__ = ["RegexForm", "RegexPath", "check_common_regex", "parse_regex_path"]


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


# -- regular expressions that mean the same everywhere -------------------------------------------

# Escapes of a character class the three engines read alike over printable ASCII.
_CLASS_ESCAPES = frozenset("dDwWsS")
_MAX_REPEAT = 1000  # RE2's limit of a counted repetition
_MAX_PATTERN = 1024


def check_common_regex(pattern: str) -> str:
    """``pattern`` when it means the same in PCRE (nginx), HAProxy's regexes (PCRE2) and Go's
    RE2 (Traefik, Caddy) for a search in a header value (printable ASCII), else ValueError
    naming the construct refused.

    Accepted: literal characters (printable ASCII; a punctuation character escaped with
    ``\\``), ``.``, ``\\d \\w \\s`` and their negations, character classes ``[...]`` (ranges,
    ``^`` negation, the same escapes; no POSIX ``[:name:]`` classes), groups ``(...)`` and
    ``(?:...)``, alternatives ``|``, the anchors ``^`` and ``$``, the repetitions ``*``, ``+``,
    ``?``, ``{n}``, ``{n,}``, ``{n,m}`` (at most 1000) and their lazy forms (``*?``). Refused:
    look-around, backreferences, named groups and flags, possessive repetitions, other escapes
    (``\\b``, ``\\x..``, ``\\p{..}``, ...) and anything else."""
    if not pattern:
        raise ValueError("an empty regular expression")
    if len(pattern) > _MAX_PATTERN:
        raise ValueError(f"a regular expression longer than {_MAX_PATTERN} characters")
    bad = next((c for c in pattern if not 0x20 <= ord(c) < 0x7F), None)
    if bad is not None:
        raise ValueError(f"the character {bad!r} (only printable ASCII)")
    _Parser(pattern).parse()
    return pattern


class _Parser:
    """A recursive-descent check of the accepted subset (see :func:`check_common_regex`)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def _refuse(self, what: str) -> ValueError:
        return ValueError(f"{what} at offset {self.i} of {self.text[:80]!r} is not supported")

    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.text[j] if j < len(self.text) else ""

    def parse(self) -> None:
        self._alternatives(depth=0)
        if self.i != len(self.text):
            raise self._refuse("an unbalanced ')'")

    def _alternatives(self, depth: int) -> None:
        while True:
            self._sequence(depth)
            if self._peek() != "|":
                return
            self.i += 1

    def _sequence(self, depth: int) -> None:
        while self.i < len(self.text) and self._peek() not in "|)":
            repeatable = self._atom(depth)
            self._quantifier(repeatable)

    def _atom(self, depth: int) -> bool:
        c = self._peek()
        if c in "^$":
            self.i += 1
            return False
        if c == "(":
            if self._peek(1) == "?":
                if self._peek(2) != ":":
                    what = {
                        "=": "look-ahead",
                        "!": "look-ahead",
                        "<": "look-behind or a named group",
                        "P": "a named group",
                    }.get(self._peek(2), "a group flag")
                    raise self._refuse(what)
                self.i += 3
            else:
                self.i += 1
            if depth > 32:
                raise self._refuse("groups nested more than 32 deep")
            self._alternatives(depth + 1)
            if self._peek() != ")":
                raise self._refuse("an unclosed '('")
            self.i += 1
            return True
        if c == "[":
            self._class()
            return True
        if c == "\\":
            self._escape(in_class=False)
            return True
        if c in "*+?{":
            raise self._refuse(f"a repetition {c!r} of nothing")
        if c == "]" or c == "}":
            raise self._refuse(f"an unescaped {c!r}")
        self.i += 1
        return True

    def _escape(self, *, in_class: bool) -> None:
        e = self._peek(1)
        if e in _CLASS_ESCAPES or (e and not e.isalnum() and e != " "):
            self.i += 2
            return
        if e.isdigit():
            raise self._refuse("a backreference")
        raise self._refuse(f"the escape '\\{e}'")

    def _class(self) -> None:
        self.i += 1
        if self._peek() == "^":
            self.i += 1
        first = True
        while True:
            c = self._peek()
            if c == "":
                raise self._refuse("an unclosed '['")
            if c == "]" and not first:
                self.i += 1
                return
            if c == "]":
                raise self._refuse("']' first in a character class")
            if c == "[":
                raise self._refuse("'[' in a character class (POSIX classes, nested sets)")
            if c == "\\":
                self._escape(in_class=True)
            else:
                self.i += 1
                if self._peek() == "-" and self._peek(1) not in ("]", ""):
                    low, high = c, self._peek(1)
                    if high in "\\[":
                        raise self._refuse("a range ending in an escape")
                    if high < low:
                        raise self._refuse(f"the range {low}-{high}")
                    self.i += 2
            first = False

    def _quantifier(self, repeatable: bool) -> None:
        c = self._peek()
        if not c or c not in "*+?{":
            return
        if not repeatable:
            raise self._refuse("a repetition of an anchor")
        if c == "{":
            end = self.text.find("}", self.i)
            body = self.text[self.i + 1 : end] if end > 0 else ""
            found = re.fullmatch(r"(\d{1,4})(,(\d{0,4}))?", body)
            if found is None:
                raise self._refuse("a '{' that is not a counted repetition {n}, {n,} or {n,m}")
            low = int(found.group(1))
            high = found.group(3)
            if low > _MAX_REPEAT or (high and (int(high) > _MAX_REPEAT or int(high) < low)):
                raise self._refuse(f"the repetition {{{body}}} (at most {_MAX_REPEAT})")
            self.i = end + 1
        else:
            self.i += 1
        if self._peek() == "?":
            self.i += 1
        elif self._peek() in ("+", "*", "{") and self._peek():
            raise self._refuse("a possessive or repeated repetition")

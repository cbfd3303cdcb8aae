"""Gateway API rows as routes-map data: what the configuration evaluates, what the map holds.

Pure: no disk, no processes. render.py calls it for every virtual host; the measured HAProxy
facts it relies on are in docs/notes/haproxy-2.6.md §9 ("the notes").

**Why data, not configuration.** A rule in haproxy.cfg changes only with a reload; a map entry
changes over the Runtime API (notes §4). So the configuration holds a small *interpreter* that
is the same for every HTTPRoute, and each route's rows, conditions and behaviour are map
entries. What the interpreter cannot take from data is the configuration's *shape*
(:class:`Shapes`): HAProxy 2.6 reads a header or a query parameter only by a name written in
the configuration (``req.fhdr(<name>)``, ``set-header <name>``), so the names a condition or a
header filter uses are part of it, and so are two bounds (the segments of a
``ReplacePrefixMatch`` prefix, the labels of a ``**.`` suffix host). A change needing a name or
a bound the running configuration lacks reloads once; everything else is data.

**Lookup.** A path key (``=<vk><path>``, ``^<vk><path>/``, render.py) whose requests all get
one row without conditions that, once chosen, is proxied to its slot as it is (no filter,
rewrite, timeout or record-only policy: :func:`slot_owner`) holds that slot: a backend's, a
weighted split's, or one of its own for a row whose only policy is client address lists
(:func:`sources_name`: the slot's section refuses what its source map says, so an
allow-listed canary Ingress costs a request no more than a plain one). Otherwise it holds a
*group* ``~<vk>#<id>``: the rows a request for that key may get, in
precedence order, with the rows of the shorter prefixes it falls through to appended
(:meth:`polyingress.core.PathTable.match`), per listener scheme, up to the first row without a
condition. Each row gives one entry::

    ~<vk>#<id>|<sig>|<scheme>|<values> -> <rank>:<row>

``<sig>`` numbers the row's *signature* (which method, header and query names it compares;
0: none), ``<scheme>`` is ``h`` or ``s``, ``<values>`` what the row requires for them (the
method, then the SHA-256 of each header value and of each ``" " + query value``, so keys stay
short whatever the values), ``<rank>`` its place in the group. The frontend builds the same
key from the request for every signature and keeps the found row of lowest rank: the first row
whose conditions hold, as the core says.

``<row>`` is a slot (plain behaviour) or a *record* ``x<vk>#<id>``::

    x<vk>#<id>      -> kind|slot/code|e500|weight|timeout|flags|host|pmode|pvalue|k|plen|scheme|
                       port|mirrors|affinity|cors|max body|userlist|rate key|rps|rpm|
                       connections|source lengths
    x<vk>#<id>|q<j> -> s<value> / a<value> / r   request header <j> of the shape: set/add/remove
    x<vk>#<id>|p<j> -> the same for the response
    x<vk>#<id>|c    -> the attributes of the affinity cookie (percent-encoded)
    x<vk>#<id>|o    -> cred|methods|headers|expose|max-age   a CORS row's values (_cors_entry)
    x<vk>#<id>|s<network, hex>/<length> -> 1 / 2 / 3   a source range: allowed / denied / both

kind ``b`` proxies to the slot (a split's slot holds the servers of its backends with their
weights; ``e500``/``weight``: the share of invalid backends answered 500), ``5`` answers 500,
``3`` answers 503, ``r`` redirects (code, scheme, host, port). ``pmode`` ``F`` replaces the
path with ``pvalue``, ``P`` replaces the matched prefix (``k`` segments, ``plen`` characters)
with it. ``mirrors`` lists the slots a copy of the request goes to (lua/mirror.lua); a slot
``<slot>:<n>:<d>`` gets n of every d requests of the row.
``affinity`` (field 15) is the index of the row's affinity cookie among the shape's: the
cookie's value (else a new ``uuid()``, which the response sets as the cookie) is ``txn.aff``,
the key every slot hashes (``balance hash var(txn.aff)``, consistent; round robin without it).
``cors`` (field 16) is the index of the row's allowed-Origin regex in the shape (CORS: the
regexes are configuration, their values data: entry ``|o``). The request policies
(core/pipeline/policy.py): ``max body`` (field 17, bytes: 413 for a Content-Length above it),
``userlist`` (18, auth_id: a userlist of the configuration), ``rate key`` (19, the Ingress's
counters) with the limits ``rps``, ``rpm`` (20, 21: requests let through in any second or
minute, burst included) and ``connections`` (22), ``source lengths`` (23: the prefix lengths
the row's ``|s`` entries use, one bit each in the order of the shape's lengths, in words of
LENGTH_WORD_BITS separated by ``:``; flag ``s``: source ranges, ``l``: an allow list; only
for a row that keeps its lists in the frontend, one with basic authentication, mirrors or a
share answered 500: every other row's lists are its slot's, :func:`sources_name`).
``flags`` (field 6, a number: the FLAG_BITS of its letters) names the optional parts a record
uses, which the frontend tests before reading their fields: ``s``/``l`` source ranges / an
allow list, ``q``/``p`` request / response header filters, ``m`` member entries, ``c`` a
connect timeout, ``b`` body size, ``u`` userlist, ``r`` rate limits, ``k`` affinity, ``o``
CORS. Both are numbers so that the frontend tests them with ``and()``, not a substring match.
A path key whose requests all get one row without conditions (the same record for both
schemes) holds that record ``x<vk>#<id>`` itself rather than a group of one. Header values
are percent-encoded (every byte but the unreserved ones) and decoded by ``url_dec``, so any
printable value, quotes and backslashes included, is data and never configuration.

Group and record ids are content hashes of their entries: a changed group gets a new id, so an
apply adds the new entries (unreachable until referenced), flips the one pointer, then deletes
the old ones (apply.py), and no request sees half of a change.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from polyingress.core import (
    BasicAuth,
    Cors,
    HeaderFilter,
    HeaderMatch,
    HostKind,
    PathType,
    Route,
    RouteModel,
    SourceRanges,
    VirtualHost,
    admitted_networks,
)

__all__ = [
    "CONNECT_PREFIX",
    "DEFAULT_SEGMENTS",
    "DEFAULT_SUFFIX_LABELS",
    "FLAG_BITS",
    "GROUP_PREFIX",
    "HOP_PREFIX",
    "LENGTH_WORD_BITS",
    "RECORD_PREFIX",
    "SCHEME_LETTER",
    "SOURCES_PREFIX",
    "SPLIT_PREFIX",
    "Shapes",
    "Signature",
    "cfg_word",
    "connect_ms",
    "connect_name",
    "encode_value",
    "hop_members",
    "is_hop",
    "is_plain",
    "plain_behaviour",
    "query_regex",
    "slot_base",
    "slot_owner",
    "source_lists",
    "source_verdicts",
    "sources_id",
    "sources_name",
    "split_members",
    "split_name",
    "split_weights",
    "table_entries",
    "wanted_names",
]

GROUP_PREFIX = "~"
RECORD_PREFIX = "x"
SPLIT_PREFIX = "split~"
# The slot owner of a split whose backendRefs carry their own request header filters
# (HTTPRouteBackendRequestHeaderModification): hop_members explains it.
HOP_PREFIX = SPLIT_PREFIX + "hop~"
# The slot owner of rows with a connect timeout (proxy-connect-timeout): ``connect~<ms>~<owner>``
# (a backend or a split), a slot whose section has its own ``timeout connect`` (HAProxy 2.6 has
# no per-request connect timeout: ``http-request set-timeout`` knows server and tunnel only).
CONNECT_PREFIX = "connect~"
# The slot owner of a proxied row whose client address lists its own slot checks
# (sources_name): ``sources~<list id>~<owner>``, where the owner is the row's backend, split or
# connect owner. The slot's section looks the client address up in its map file
# sources/<slot>.map (render.source_file): network -> 1 refused, 0 admitted, covering every
# IPv4 and every IPv6 address (source_verdicts); every other slot's file is empty (nobody
# refused). A list change is a new owner, so a new slot: no reload.
SOURCES_PREFIX = "sources~"
_LIST_ID_CHARS = 16
SCHEME_LETTER = {"http": "h", "https": "s"}
REPLACE_FULL = "ReplaceFullPath"  # the core's PathModifierType values
REPLACE_PREFIX = "ReplacePrefixMatch"
# Bounds rendered even when the model needs less, so that routine changes fit without a reload.
DEFAULT_SEGMENTS = 16
DEFAULT_SUFFIX_LABELS = 8
# Source range prefix lengths (family, length) evaluated even when the model needs none: the
# usual ones, so that routine allow/deny list changes fit without a reload.
DEFAULT_SOURCE_LENGTHS = ((4, 8), (4, 16), (4, 24), (4, 32), (6, 48), (6, 64), (6, 128))
# A record's kind and optional parts (field 6): one bit each, tested by the frontend as
# ``var(txn.fl),and(<bit>)`` (arithmetic: a substring match hashes its input for the pattern
# cache, and a field() scans the record, on every rule a record row passes). Lower case: the
# parts of _record's docstring; e a share answered 500, t a timeout, w a new path, h a host
# (a rewrite's, a redirect's), i mirrors; upper case and digits: the kind (B proxied, R
# redirect, 5 and 3 answers).
FLAG_LETTERS = "slqpmcburkoethwiBR53"
FLAG_BITS = {letter: 1 << i for i, letter in enumerate(FLAG_LETTERS)}
# Source lengths (field 23): bit i of word i // LENGTH_WORD_BITS for the i-th of source_masks.
LENGTH_WORD_BITS = 62
# Member sockets rendered for splits whose backendRefs have their own filters (a split of more
# members reloads once, as a longer prefix does).
DEFAULT_MEMBERS = 8
MAX_SERVER_WEIGHT = 256  # HAProxy's server weight range is 0-256
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_WELL_KNOWN = {"http": 80, "https": 443}
# The record kinds answering a status by themselves: 500 (a rule without a valid backend, an
# annotation the backend lacks), 503 (an annotation ingress-nginx denies: custom-headers).
_STATUS_KINDS = {500: "5", 503: "3"}
_ID_BYTES = 8  # 64-bit content ids (16 hex digits); a clash within one host is detected

Signature = tuple[bool, tuple[str, ...], tuple[str, ...]]
"""(compares the method, header names, query parameter names) of a conditional row; a cookie
match counts as a header named ``cookie:<name>`` (no header name holds ``:``)."""
COOKIE = "cookie:"
# A regular expression header match (HeaderMatch.regex) counts as a header named
# ``regex:<name>:<regex>`` (no header name holds ``:``) whose value is "1" when the regex is
# found in the first such header, a non-empty one: the regex is configuration (a new one
# reloads once), a row using it map data.
REGEX = "regex:"
_FOUND = "1"


# --------------------------------------------------------------------------- quoting


def cfg_word(text: str) -> str:
    """One haproxy.cfg word holding ``text`` literally: single-quoted (no escape, no ``$``
    expansion, no ``#`` comment inside), a ``'`` closed, backslash-escaped and reopened (notes
    §9: ``'a'\\''b'`` is the word ``a'b``). Control characters are refused."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError(f"{text!r}: control characters cannot be written to haproxy.cfg")
    return "'" + text.replace("'", "'\\''") + "'"


def _arg(text: str) -> str:
    """A sample-fetch argument holding ``text`` literally (double-quoted at the argument level,
    inside a :func:`cfg_word`); header names are tokens, which hold no ``"`` or ``\\``."""
    if '"' in text or "\\" in text:
        raise ValueError(f"{text!r}: not an HTTP token")
    return f'"{text}"'


def encode_value(value: str) -> str:
    """A header value as map data: every byte but the unreserved characters percent-encoded,
    so the entry has no space, ``;`` or ``\\`` and ``url_dec`` gives the value back exactly (no
    literal ``+`` or ``?``: url_dec turns ``+`` after ``?`` into a space)."""
    return "".join(
        c if c in _UNRESERVED else "".join(f"%{b:02X}" for b in c.encode()) for c in value
    )


def _digest(value: str) -> str:
    """A compared value as it stands in a key: SHA-256 in upper-case hex, what HAProxy's
    ``sha2(256),hex`` gives (keys stay short whatever the value; no preimage to forge)."""
    return hashlib.sha256(value.encode()).hexdigest().upper()


def query_regex(name: str) -> str:
    """The regex whose first group is the value of the first ``name`` parameter of a query
    split on ``&`` (the core's Request.query_param; HAProxy's url_param also stops at ``;``).
    Names are unreserved characters: only ``.`` needs escaping, as ``[.]`` (no backslash)."""
    if not name or any(c not in _UNRESERVED for c in name):
        raise ValueError(f"query parameter name {name!r} is not [A-Za-z0-9._~-]")
    literal = name.replace(".", "[.]")
    return f"^(?:[^&]*&)*?{literal}(?:=([^&]*))?(?:&.*)?$"


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True, slots=True)
class Shapes:
    """What the running configuration can evaluate (the names and bounds it was rendered with).

    Fixed at a reload: a model needing more (:meth:`covers`) reloads once. Every tuple is sorted;
    an index is a position in it."""

    signatures: tuple[Signature, ...] = ()
    match_headers: tuple[str, ...] = ()
    match_queries: tuple[str, ...] = ()
    request_filters: tuple[str, ...] = ()
    response_filters: tuple[str, ...] = ()
    affinity_cookies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()  # the allowed-Origin regexes of CORS rows
    segments: int = DEFAULT_SEGMENTS
    suffix_labels: int = DEFAULT_SUFFIX_LABELS
    source_lengths: tuple[tuple[int, int], ...] = DEFAULT_SOURCE_LENGTHS
    # Basic authentication: (id, BasicAuth) of each userlist, the model's own (a userlist's
    # users and realm are configuration: HAProxy 2.6 changes none at run time).
    auths: tuple[tuple[str, BasicAuth], ...] = ()
    members: int = DEFAULT_MEMBERS  # member sockets of splits with backendRef filters
    _index: dict[str, dict[object, int]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def of(cls, model: RouteModel) -> Shapes:
        """What ``model`` needs (at least the default bounds)."""
        signatures: set[Signature] = set()
        req: set[str] = set()
        resp: set[str] = set()
        cookies: set[str] = set()
        cors: set[str] = set()
        segments = DEFAULT_SEGMENTS
        labels = DEFAULT_SUFFIX_LABELS
        lengths = set(DEFAULT_SOURCE_LENGTHS)
        auths: dict[str, BasicAuth] = {}
        members = DEFAULT_MEMBERS
        for vhost in model.vhosts:
            needs = _needs(vhost)
            if needs is _NOTHING:
                continue
            signatures |= needs.signatures
            req |= needs.request_filters
            resp |= needs.response_filters
            cookies |= needs.cookies
            cors |= needs.cors
            segments = max(segments, needs.segments)
            labels = max(labels, needs.labels)
            lengths |= needs.source_lengths
            auths.update(needs.auths)
            members = max(members, needs.members)
        return cls(
            signatures=tuple(sorted(signatures)),
            match_headers=tuple(sorted({h for s in signatures for h in s[1]})),
            match_queries=tuple(sorted({q for s in signatures for q in s[2]})),
            request_filters=tuple(sorted(req)),
            response_filters=tuple(sorted(resp)),
            affinity_cookies=tuple(sorted(cookies)),
            cors_origins=tuple(sorted(cors)),
            segments=segments,
            suffix_labels=labels,
            source_lengths=tuple(sorted(lengths)),
            auths=tuple(sorted(auths.items(), key=lambda item: item[0])),
            members=members,
        )

    def covers(self, needed: Shapes) -> bool:
        return (
            set(needed.signatures) <= set(self.signatures)
            and set(needed.request_filters) <= set(self.request_filters)
            and set(needed.response_filters) <= set(self.response_filters)
            and set(needed.affinity_cookies) <= set(self.affinity_cookies)
            and set(needed.cors_origins) <= set(self.cors_origins)
            and self.segments >= needed.segments
            and self.suffix_labels >= needed.suffix_labels
            and set(needed.source_lengths) <= set(self.source_lengths)
            and {a for a, _u in needed.auths} <= {a for a, _u in self.auths}
            and self.members >= needed.members
        )

    def names_cover(self, needed: Shapes) -> bool:
        """True when only a bound (not a name) is missing."""
        return (
            set(needed.signatures) <= set(self.signatures)
            and set(needed.request_filters) <= set(self.request_filters)
            and set(needed.response_filters) <= set(self.response_filters)
            and set(needed.affinity_cookies) <= set(self.affinity_cookies)
            and set(needed.cors_origins) <= set(self.cors_origins)
            and set(needed.source_lengths) <= set(self.source_lengths)
            and {a for a, _u in needed.auths} <= {a for a, _u in self.auths}
        )

    def union(self, other: Shapes) -> Shapes:
        return Shapes(
            signatures=tuple(sorted({*self.signatures, *other.signatures})),
            match_headers=tuple(sorted({*self.match_headers, *other.match_headers})),
            match_queries=tuple(sorted({*self.match_queries, *other.match_queries})),
            request_filters=tuple(sorted({*self.request_filters, *other.request_filters})),
            response_filters=tuple(sorted({*self.response_filters, *other.response_filters})),
            affinity_cookies=tuple(sorted({*self.affinity_cookies, *other.affinity_cookies})),
            cors_origins=tuple(sorted({*self.cors_origins, *other.cors_origins})),
            segments=max(self.segments, other.segments),
            suffix_labels=max(self.suffix_labels, other.suffix_labels),
            source_lengths=tuple(sorted({*self.source_lengths, *other.source_lengths})),
            auths=other.auths,  # the new model's userlists only: no stale users are kept
            members=max(self.members, other.members),
        )

    def _lookup(self, kind: str, values: Sequence[object], key: object) -> int:
        index = self._index.get(kind)
        if index is None:
            index = {v: i for i, v in enumerate(values)}
            self._index[kind] = index
        return index[key]

    def signature_index(self, sig: Signature | None) -> int:
        """0 for a row without conditions, else 1 + the signature's position."""
        if sig is None:
            return 0
        return 1 + self._lookup("sig", self.signatures, sig)

    def header_index(self, name: str) -> int:
        return self._lookup("hdr", self.match_headers, name)

    def query_index(self, name: str) -> int:
        return self._lookup("qry", self.match_queries, name)

    def request_filter_index(self, name: str) -> int:
        return self._lookup("req", self.request_filters, name)

    def response_filter_index(self, name: str) -> int:
        return self._lookup("resp", self.response_filters, name)

    def cors_index(self, regex: str) -> int:
        return self._lookup("cors", self.cors_origins, regex)

    # ---- the configuration lines (haproxy.cfg.j2 writes them as given)

    def value_lines(self) -> list[str]:
        """``http-request`` rules (with their conditions) fetching the request values the
        signatures compare."""
        group = " if { var(txn.g) -m found }"
        lines = []
        for j, name in enumerate(self.match_headers):
            if name.startswith(REGEX):
                header, _, regex = name.removeprefix(REGEX).partition(":")
                fetch = cfg_word(f"req.fhdr({_arg(header)},1)")
                value = cfg_word(f"str({_FOUND}),sha2(256),hex")
                found = f"{{ {fetch} -m len gt 0 }} {{ {fetch} -m reg {cfg_word(regex)} }}"
                lines.append(f"set-var(txn.m{j}) {value}{group} {found}")
                continue
            if name.startswith(COOKIE):
                # " <value>" of the first such cookie; a header without it keeps its own text,
                # which never starts with a space (HAProxy trims it): no row's value.
                regex = cookie_regex(name.removeprefix(COOKIE))
                expr = cfg_word(f'req.fhdr(cookie),regsub("{regex}"," \\1"),sha2(256),hex')
            else:
                expr = cfg_word(f"req.fhdr({_arg(name)},1),sha2(256),hex")
            lines.append(f"set-var(txn.m{j}) {expr}{group}")
        for j, name in enumerate(self.match_queries):
            expr = cfg_word(f'query,regsub("{query_regex(name)}"," \\1"),sha2(256),hex')
            lines.append(f"set-var(txn.u{j}) {expr}{group}")
        return lines

    def signature_formats(self, scheme: str) -> list[str]:
        """The lookup key of each signature (index order, 0 first) as a log-format string."""
        letter = SCHEME_LETTER[scheme]
        formats = [f"%[var(txn.g)]|0|{letter}|"]
        for i, (method, headers, queries) in enumerate(self.signatures, start=1):
            parts = ["%[method]"] if method else []
            parts += [f"%[var(txn.m{self.header_index(h)})]" for h in headers]
            parts += [f"%[var(txn.u{self.query_index(q)})]" for q in queries]
            formats.append(f"%[var(txn.g)]|{i}|{letter}|" + "|".join(parts))
        return formats

    def affinity_index(self, name: str) -> int:
        return self._lookup("aff", self.affinity_cookies, name)

    def affinity_lines(self) -> list[tuple[int, str, str]]:
        """(index, cookie name as a log-format word part, the fetch of its value) per
        affinity cookie: ``" <value>"`` of the first such cookie (cookie_regex), else the
        header as it is (never starting with a space) or nothing."""
        out = []
        for j, name in enumerate(self.affinity_cookies):
            regex = cookie_regex(name)  # checks the name: letters, digits and -._~
            fetch = cfg_word(f'req.fhdr(cookie),regsub("{regex}"," \\1")')
            out.append((j, name, fetch))
        return out

    def source_masks(self) -> list[tuple[int, int, int]]:
        """(IPv4 mask, IPv6 mask, length) of each prefix length the source ranges compare: the
        client address masked to it (``src,ipmask(m4,m6),hex``) is looked up as
        ``<record>|s<hex>/<length>``; a family without that length keeps its whole address,
        which no entry of that length can equal but the address itself."""
        v4 = {n for f, n in self.source_lengths if f == 4}
        v6 = {n for f, n in self.source_lengths if f == 6}
        return [(n if n in v4 else 32, n if n in v6 else 128, n) for n in sorted(v4 | v6)]

    def source_mask_bits(self) -> list[tuple[int, int, int, int, int]]:
        """:meth:`source_masks` with where a record marks each length it uses: (IPv4 mask,
        IPv6 mask, length, word, bit); field 23 holds the words, ``:``-separated."""
        return [
            (m4, m6, n, i // LENGTH_WORD_BITS, 1 << (i % LENGTH_WORD_BITS))
            for i, (m4, m6, n) in enumerate(self.source_masks())
        ]

    def source_words(self) -> range:
        """The words of record field 23 (one per LENGTH_WORD_BITS lengths of the shape)."""
        return range(max(1, math.ceil(len(self.source_masks()) / LENGTH_WORD_BITS)))

    def source_length_field(self, lengths: Iterable[int]) -> str:
        """Record field 23 for a row whose source ranges use the prefix ``lengths``."""
        where = {n: (w, bit) for _m4, _m6, n, w, bit in self.source_mask_bits()}
        words = [0] * len(self.source_words())
        for n in set(lengths):
            w, bit = where[n]  # a shape without it does not cover the row: it reloads first
            words[w] |= bit
        return ":".join(str(w) for w in words)

    def userlists(self) -> list[tuple[str, str | None, list[str]]]:
        """(id, realm word, user lines) of each userlist: ``user <name> password <hash>``
        (names and hashes are checked by the core: no space, quote or control character).
        The realm word is None for the empty realm (no auth-realm: ingress-nginx's
        ``auth_basic ""``), which ``http-request auth realm`` refuses: the frontend answers
        that challenge by itself."""
        out: list[tuple[str, str | None, list[str]]] = []
        for ident, auth in self.auths:
            users = [f"user {cfg_word(u)} password {cfg_word(h)}" for u, h in auth.users]
            out.append((ident, cfg_word(auth.realm) if auth.realm else None, users))
        return out

    def request_filter_names(self) -> list[tuple[int, str]]:
        return [(j, cfg_word(n)) for j, n in enumerate(self.request_filters)]

    def response_filter_names(self) -> list[tuple[int, str]]:
        return [(j, cfg_word(n)) for j, n in enumerate(self.response_filters)]

    def cors_regexes(self) -> list[tuple[int, str]]:
        """The allowed-Origin regex of each CORS index, as a configuration word."""
        return [(j, cfg_word(r)) for j, r in enumerate(self.cors_origins)]


def signature(route: Route) -> Signature | None:
    if route.method is None and not route.headers and not route.query and not route.cookies:
        return None
    return (
        route.method is not None,
        (*(_header_key(h) for h in route.headers), *(COOKIE + c.name for c in route.cookies)),
        tuple(q.name for q in route.query),
    )


def _values(route: Route) -> str:
    parts = [route.method] if route.method is not None else []
    parts += [_digest(_FOUND if h.regex else h.value) for h in route.headers]
    parts += [_digest(" " + c.value) for c in route.cookies]
    parts += [_digest(" " + q.value) for q in route.query]
    return "|".join(parts)


def _header_key(h: HeaderMatch) -> str:
    return f"{REGEX}{h.name}:{h.value}" if h.regex else h.name


def cookie_regex(name: str) -> str:
    """The regex whose first group is the value of the first cookie ``name`` (case-sensitive)
    of a Cookie header (the core's Request.cookie: pairs split on ``;``, spaces and tabs around
    them dropped, pairs without ``=`` skipped). HAProxy's ``req.cook`` takes the *last* pair of
    that name, so the value comes from ``regsub`` on the header. Names are letters, digits and
    ``-._~`` (the translation's rule): ``.`` is written ``[.]``, blanks ``[[:blank:]]``: no
    backslash or comma reaches the converter argument (notes §9)."""
    if not name or any(c not in _UNRESERVED for c in name):
        raise ValueError(f"cookie name {name!r} is not [A-Za-z0-9._~-]")
    n = name.replace(".", "[.]")
    return f"^(?:(?![[:blank:]]*{n}=)[^;]*;)*[[:blank:]]*{n}=([^;]*?)[[:blank:]]*(?:;.*)?$"


def cookie_attributes(route: Route, scheme: str) -> str:
    """What follows ``<name>=<key>`` in an affinity cookie (ingress-nginx's attributes):
    Path (the row's unless given), Domain, Max-Age, SameSite, HttpOnly, Secure (on HTTPS
    unless given)."""
    a = route.affinity
    assert a is not None
    parts = [f"Path={a.path if a.path is not None else route.path}"]
    if a.domain is not None:
        parts.append(f"Domain={a.domain}")
    if a.max_age is not None:
        parts.append(f"Max-Age={int(a.max_age)}")
    if a.samesite is not None:
        parts.append(f"SameSite={a.samesite}")
    parts.append("HttpOnly")
    if a.secure if a.secure is not None else scheme == "https":
        parts.append("Secure")
    return "".join("; " + p for p in parts)


def _ops(f: HeaderFilter | None) -> Iterator[tuple[str, str, str]]:
    """(operation s/a/r, header name, value) of a header filter, in the order the core applies
    them: set, add, remove."""
    if f is not None:
        yield from (("s", name, value) for name, value in f.set)
        yield from (("a", name, value) for name, value in f.add)
        yield from (("r", name, "") for name in f.remove)


def _row_request_filter(route: Route) -> HeaderFilter | None:
    """The request header filter the frontend applies for a row: the row's own, then that of
    the one backendRef of a split that gets its requests (the others weigh 0 or are invalid);
    none for a split through member sockets (:func:`hop_members`: each member's is applied
    there, the row's included)."""
    if not route.split:
        return route.request_headers
    live = [w for w in route.split if w.backend is not None and w.weight > 0]
    if hop_members(route) is not None:
        return None
    if len(live) == 1 or len({w.request_headers for w in live}) == 1:
        return live[0].headers(route.request_headers) if live else route.request_headers
    return route.request_headers


def _filter_ops(route: Route, *, response: bool) -> Iterator[tuple[str, str, str]]:
    """(operation s/a/r, header name, value) of the row's request or response header filter,
    in the order the core applies them: set, add, remove."""
    return _ops(route.response_headers if response else _row_request_filter(route))


def _filter_names(route: Route, *, response: bool) -> Iterator[str]:
    yield from (name for _op, name, _value in _filter_ops(route, response=response))
    if not response:
        for _backend, _weight, f in hop_members(route) or ():
            yield from (name for _op, name, _value in _ops(f))


def _modifiers(route: Route) -> Iterator[tuple[str, str]]:
    """(type, value) of the row's path modifiers (its redirect's, its rewrite's)."""
    if route.redirect is not None and route.redirect.path is not None:
        yield route.redirect.path.type.value, route.redirect.path.value
    if route.rewrite is not None and route.rewrite.path is not None:
        yield route.rewrite.path.type.value, route.rewrite.path.value


def _prefix(route: Route) -> str:
    return route.path.rstrip("/")


# --------------------------------------------------------------------------- splits


def _live_members(route: Route) -> list[tuple[str, int]]:
    return [(w.backend, w.weight) for w in route.split if w.backend is not None and w.weight > 0]


def hop_members(route: Route) -> list[tuple[str, int, HeaderFilter | None]] | None:
    """(backend, weight, request header filter) of each backendRef of a split that gets
    requests, in the split's order, when they do not all change the request alike; else None.

    HAProxy applies ``http-request`` rules before its load balancing picks a server, so the
    split's slot cannot change a request by the server it picked. Such a split's slot (owner
    ``split~hop~<backend>*<weight>,...``, a member per backendRef, the same backend possibly
    twice) has the servers of each member's endpoints, weighted as any split's, all pointing at
    member socket ``i`` (``unix@member-<i>.sock``, i: the member's place): the split's shares,
    and a member without a ready endpoint getting none, stay HAProxy's weighted round robin.
    The internal frontend ``members`` binds those sockets; it knows the member by the socket
    (``so_id``) and the row by the header ``x-polyingress-row`` the row's frontend sets, applies
    the member's filter (the row's, then its own: record entries ``|m<i>q<j>``) and proxies to
    the member backend's own slot (entry ``|m<i>``), which balances over its endpoints."""
    live = [w for w in route.split if w.backend is not None and w.weight > 0]
    if len(live) < 2 or all(w.request_headers is None for w in live):
        return None
    if len({w.request_headers for w in live}) == 1:
        return None  # every share changes the request alike: the row's frontend does it
    return [(w.backend, w.weight, w.headers(route.request_headers)) for w in live if w.backend]


def is_hop(name: str) -> bool:
    return name.startswith(HOP_PREFIX)


def split_name(route: Route) -> str | None:
    """The slot owner of a split with two backends or more: its backends and their weights
    (divided by their greatest common divisor). None for one backend: its own slot serves.
    A split whose members change the request differently: :func:`hop_members`."""
    hop = hop_members(route)
    if hop is not None:
        divisor = math.gcd(*(w for _b, w, _f in hop))
        return HOP_PREFIX + ",".join(f"{b}*{w // divisor}" for b, w, _f in hop)
    members = _live_members(route)
    if len({b for b, _w in members}) < 2:
        return None
    totals: dict[str, int] = {}
    for backend, weight in members:
        totals[backend] = totals.get(backend, 0) + weight
    divisor = math.gcd(*totals.values())
    return SPLIT_PREFIX + ",".join(f"{b}*{w // divisor}" for b, w in sorted(totals.items()))


def _base_owner(route: Route) -> str | None:
    """The owner of the slot a proxied row's requests go to, before a connect timeout or
    source lists of its own: its backend, its split's, or its one live backend's."""
    base = split_name(route) if route.split else route.backend
    if base is None:
        live = [w.backend for w in route.split if w.backend is not None and w.weight > 0]
        if not live:
            return None
        base = live[0]
    return base


def connect_name(route: Route) -> str | None:
    """The slot owner of a proxied row with a connect timeout: ``connect~<ms>~<owner>``, the
    owner the row's requests would have without it (its backend, or its split's)."""
    if route.connect_timeout is None or route.status is not None or route.redirect is not None:
        return None
    base = _base_owner(route)
    if base is None:
        return None
    ms = max(1, round(route.connect_timeout * 1000))
    return f"{CONNECT_PREFIX}{ms}~{base}"


def _unwrap(name: str, prefix: str) -> str:
    """``name`` without one ``<prefix><value>~`` wrapping (a source-list or connect-timeout
    owner's), or ``name`` when it has none."""
    if not name.startswith(prefix):
        return name
    return name[len(prefix) :].split("~", 1)[1]


def connect_ms(name: str) -> int | None:
    """The connect timeout (ms) of a slot owner, None for an owner without one."""
    name = _unwrap(name, SOURCES_PREFIX)
    if not name.startswith(CONNECT_PREFIX):
        return None
    return int(name[len(CONNECT_PREFIX) :].split("~", 1)[0])


def slot_base(name: str) -> str:
    """The owner whose servers a slot owner's slot has: without its source lists
    (``sources~<id>~``) and its connect timeout (``connect~<ms>~``)."""
    return _unwrap(_unwrap(name, SOURCES_PREFIX), CONNECT_PREFIX)


def sources_id(name: str) -> str | None:
    """The list id of a source-list owner (:func:`sources_name`), None for any other owner."""
    if not name.startswith(SOURCES_PREFIX):
        return None
    return name[len(SOURCES_PREFIX) :].split("~", 1)[0]


_Net = TypeVar("_Net", ipaddress.IPv4Network, ipaddress.IPv6Network)


def _complement(nets: Iterable[_Net], universe: _Net) -> list[_Net]:
    """The networks of ``universe`` outside ``nets`` (one address family), collapsed."""
    pieces = [universe]
    for bad in ipaddress.collapse_addresses(nets):
        kept: list[_Net] = []
        for piece in pieces:
            if not piece.overlaps(bad):
                kept.append(piece)
            elif not bad.supernet_of(piece):
                kept.extend(piece.address_exclude(bad))
        pieces = kept
    return list(ipaddress.collapse_addresses(pieces))


_VERDICTS: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[tuple[str, str], ...]] = {}


def source_verdicts(ranges: SourceRanges) -> tuple[tuple[str, str], ...]:
    """(network, ``1`` refused / ``0`` admitted) for the lists ``ranges``: disjoint CIDRs
    covering all of IPv4 and all of IPv6 (the core's admitted_networks and the rest), IPv4
    first. Complete on purpose: HAProxy 2.6's ip lookup (``map_ip``, ``-m ip``) tries an
    address the tree of its family lacks in the other family's form (an IPv4 client as
    ::ffff:a.b.c.d; an IPv6 one of ::/96, ::ffff:0:0/96 or 2002::/16 as the IPv4 address it
    holds: measured with ``get map``); a family whose every address has an entry is never
    converted, so each client is judged by its own address, as the core does."""
    key = (ranges.allow, ranges.deny)
    found = _VERDICTS.get(key)
    if found is not None:
        return found
    admitted = [ipaddress.ip_network(n) for n in admitted_networks(ranges)]
    v4 = [n for n in admitted if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in admitted if isinstance(n, ipaddress.IPv6Network)]
    refused4 = _complement(v4, ipaddress.IPv4Network("0.0.0.0/0"))
    refused6 = _complement(v6, ipaddress.IPv6Network("::/0"))
    verdicts4 = sorted([(n, "0") for n in v4] + [(n, "1") for n in refused4])
    verdicts6 = sorted([(n, "0") for n in v6] + [(n, "1") for n in refused6])
    found = tuple((str(n), v) for n, v in (*verdicts4, *verdicts6))
    if len(_VERDICTS) > 100_000:
        _VERDICTS.clear()
    _VERDICTS[key] = found
    return found


def _list_id(verdicts: Sequence[tuple[str, str]]) -> str:
    blob = "\n".join(f"{n} {v}" for n, v in verdicts)
    return hashlib.sha256(blob.encode()).hexdigest()[:_LIST_ID_CHARS]


def sources_name(route: Route) -> str | None:
    """The slot owner of a proxied row whose source lists its slot checks:
    ``sources~<list id>~<owner>`` (list id: a hash of :func:`source_verdicts`; owner: the
    connect or base owner the row would have without them). None for a row without lists, or
    one that must check them in the frontend: with basic authentication (403 comes before 401,
    and the frontend asks for credentials), mirrors (no copy of a refused request), a share
    answered 500 (the slots' 500 rule runs before a slot's own rules), or no proxying."""
    policy = route.policy
    if policy is None or policy.sources is None or policy.auth is not None:
        return None
    if route.mirrors or route.status is not None or route.redirect is not None:
        return None
    if any(w.backend is None and w.weight > 0 for w in route.split):
        return None
    base = connect_name(route) or _base_owner(route)
    if base is None:
        return None
    return f"{SOURCES_PREFIX}{_list_id(source_verdicts(policy.sources))}~{base}"


def split_members(name: str) -> tuple[tuple[str, int], ...]:
    """(backend, weight) of a split's slot owner name."""
    body = name.removeprefix(HOP_PREFIX).removeprefix(SPLIT_PREFIX)
    out = []
    for part in body.split(","):
        backend, _, weight = part.rpartition("*")
        out.append((backend, int(weight)))
    return tuple(out)


def split_weights(members: Sequence[tuple[str, int, int]]) -> dict[str, int]:
    """The server weight of each member's endpoints: (backend, weight, ready servers) -> weight
    per server, so that each backend gets its weight's share of the requests (HAProxy's
    weighted round robin). Exact when the ratios fit HAProxy's 1-256; else rounded (each share
    then within 1/256 of its weight's), and never 0 for a backend with a weight."""
    wanted = {b: (w, n) for b, w, n in members if n > 0}
    if not wanted:
        return {}
    lcm = math.lcm(*(n for _w, n in wanted.values()))
    exact = {b: w * lcm // n for b, (w, n) in wanted.items()}
    divisor = math.gcd(*exact.values())
    exact = {b: v // divisor for b, v in exact.items()}
    top = max(exact.values())
    if top <= MAX_SERVER_WEIGHT:
        return exact
    return {b: max(1, round(MAX_SERVER_WEIGHT * v / top)) for b, v in exact.items()}


def wanted_names(model: RouteModel) -> list[str]:
    """Every slot owner the model needs: its backends, then the splits of its rows."""
    last = _WANTED.get("model")
    if last is not None and last[0] is model:
        return list(last[1])
    names = [b.name for b in model.backends]
    splits: set[str] = set()
    cached = _NEEDS.get
    for vhost in model.vhosts:
        hit = cached(vhost.host)
        needs = hit[1] if hit is not None and hit[0] is vhost else _needs(vhost)
        if needs.splits:
            splits |= needs.splits
    found = (*names, *sorted(splits))
    _WANTED["model"] = (model, found)  # an apply asks twice (plan, then apply)
    return list(found)


_WANTED: dict[str, tuple[RouteModel, tuple[str, ...]]] = {}


def source_lists(model: RouteModel) -> dict[str, tuple[tuple[str, str], ...]]:
    """List id -> the verdicts (:func:`source_verdicts`) of every source-list owner
    (:func:`sources_name`) of the model: what the map file of its slot holds."""
    last = _LISTS.get("model")
    if last is not None and last[0] is model:
        return last[1]
    found: dict[str, tuple[tuple[str, str], ...]] = {}
    cached = _NEEDS.get
    for vhost in model.vhosts:
        hit = cached(vhost.host)
        needs = hit[1] if hit is not None and hit[0] is vhost else _needs(vhost)
        found.update(needs.sources)
    _LISTS["model"] = (model, found)
    return found


_LISTS: dict[str, tuple[RouteModel, dict[str, tuple[tuple[str, str], ...]]]] = {}


@dataclass(frozen=True, slots=True)
class _Needs:
    """What one virtual host needs of the configuration and of the slots."""

    signatures: frozenset[Signature] = frozenset()
    request_filters: frozenset[str] = frozenset()
    response_filters: frozenset[str] = frozenset()
    segments: int = 0
    labels: int = 0
    splits: frozenset[str] = frozenset()
    cookies: frozenset[str] = frozenset()
    cors: frozenset[str] = frozenset()
    source_lengths: frozenset[tuple[int, int]] = frozenset()
    auths: frozenset[tuple[str, BasicAuth]] = frozenset()
    members: int = 0
    sources: frozenset[tuple[str, tuple[tuple[str, str], ...]]] = frozenset()  # (id, verdicts)


_NOTHING = _Needs()
# Per host, valid while the builder hands us the same VirtualHost object (it reuses an unchanged
# host's), so an apply in a world of 10,000 hosts looks at the rows of the changed ones only.
_NEEDS: dict[str | None, tuple[VirtualHost, _Needs]] = {}


def _needs(vhost: VirtualHost) -> _Needs:
    hit = _NEEDS.get(vhost.host)
    if hit is not None and hit[0] is vhost:
        return hit[1]
    signatures: set[Signature] = set()
    req: set[str] = set()
    resp: set[str] = set()
    splits: set[str] = set()
    cookies: set[str] = set()
    cors: set[str] = set()
    lengths: set[tuple[int, int]] = set()
    auths: set[tuple[str, BasicAuth]] = set()
    lists: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    segments = labels = members = 0
    if vhost.kind is HostKind.SUFFIX and vhost.wildcard_suffix is not None:
        labels = vhost.wildcard_suffix.count(".") + 1
    for route in vhost.routes:
        if plain_behaviour(route) and not route.conditional:
            continue
        sig = signature(route)
        if sig is not None:
            signatures.add(sig)
        req.update(_filter_names(route, response=False))
        resp.update(_filter_names(route, response=True))
        for kind, _value in _modifiers(route):
            if kind == REPLACE_PREFIX:
                segments = max(segments, _prefix(route).count("/"))
        own = sources_name(route)
        if own is not None:
            # The row's slot checks its lists: the owners it wraps need no slot of their own,
            # and its lists no lookup in the frontend.
            assert route.policy is not None and route.policy.sources is not None
            splits.add(own)
            ident = sources_id(own)
            assert ident is not None
            lists.add((ident, source_verdicts(route.policy.sources)))
        else:
            if route.split and (name := split_name(route)) is not None:
                splits.add(name)
            if (name := connect_name(route)) is not None:
                splits.add(name)
            lengths.update((n.version, n.prefixlen) for n, _v in _source_networks(route))
        if route.affinity is not None:
            cookies.add(route.affinity.name)
        if route.cors is not None:
            cors.add(route.cors.origin_regex)
        if route.policy is not None and route.policy.auth is not None:
            auths.add((auth_id(route.policy.auth), route.policy.auth))
        hop = hop_members(route)
        if hop is not None:
            members = max(members, len(hop))
    found = _Needs(
        frozenset(signatures),
        frozenset(req),
        frozenset(resp),
        segments,
        labels,
        frozenset(splits),
        frozenset(cookies),
        frozenset(cors),
        frozenset(lengths),
        frozenset(auths),
        members,
        frozenset(lists),
    )
    if found == _NOTHING:
        found = _NOTHING
    if len(_NEEDS) > 200_000:
        _NEEDS.clear()
    _NEEDS[vhost.host] = (vhost, found)
    return found


# --------------------------------------------------------------------------- entries


def is_plain(route: Route) -> bool:
    """A row the routes map can state as a slot: no condition, both schemes, and a behaviour
    that is its slot's (:func:`slot_owner`)."""
    return not route.conditional and slot_owner(route) is not None


def slot_owner(route: Route) -> str | None:
    """The slot owner of a row that, once chosen, is proxied to its slot as it is (its record
    would hold nothing but the slot): a backend, a weighted split without a share answered
    500 or filters of its backendRefs, or a row whose only policy is source lists its slot
    checks (:func:`sources_name`). None for a row that needs a record."""
    if (
        route.status is not None
        or route.redirect is not None
        or route.rewrite is not None
        or route.request_headers is not None
        or route.response_headers is not None
        or route.timeout is not None
        or route.mirrors
        or route.affinity is not None
        or route.cors is not None
        or route.connect_timeout is not None
    ):
        return None
    policy = route.policy
    if policy is not None:
        if policy.max_body or policy.auth is not None or policy.rate is not None:
            return None
        if policy.sources is not None:
            return sources_name(route)
    if not route.split:
        return route.backend
    if any(w.backend is None and w.weight > 0 for w in route.split):
        return None
    if hop_members(route) is not None or _row_request_filter(route) is not None:
        return None
    return _base_owner(route)


def plain_behaviour(route: Route) -> bool:
    """A row that, once chosen, is proxied to its one backend as it is: its record is a slot."""
    return (
        route.backend is not None
        and not route.split
        and route.status is None
        and route.redirect is None
        and route.rewrite is None
        and route.request_headers is None
        and route.response_headers is None
        and route.timeout is None
        and not route.mirrors
        and route.affinity is None
        and route.cors is None
        and route.policy is None
        and route.connect_timeout is None
    )


def _content_id(entries: Mapping[str, str]) -> str:
    blob = "\n".join(f"{k} {v}" for k, v in sorted(entries.items()))
    return hashlib.sha256(blob.encode()).hexdigest()[: 2 * _ID_BYTES]


class _Ids:
    """Content ids of one virtual host's groups and records, refusing a clash (two contents,
    one id) rather than serving the wrong one."""

    def __init__(self, vk: str) -> None:
        self.vk = vk
        self.seen: dict[str, str] = {}

    def name(self, prefix: str, entries: Mapping[str, str]) -> str:
        """``<prefix><vk>#<id>`` for ``entries`` (suffix -> value)."""
        ident = _content_id(entries)
        blob = repr(sorted(entries.items()))
        if self.seen.setdefault(prefix + ident, blob) != blob:
            raise ValueError(f"host {self.vk}: content id {ident} names two different contents")
        return f"{prefix}{self.vk}#{ident}"


@dataclass(slots=True)
class _Compiler:
    vk: str
    assigned: Mapping[str, str]
    shapes: Shapes
    out: dict[str, str]
    ids: _Ids
    records: dict[tuple[int, str], str] = field(default_factory=dict)

    # ---- records

    def row_ref(self, route: Route, scheme: str) -> str:
        owner = slot_owner(route)
        if owner is not None:
            return self.assigned[owner]
        cache_key = (id(route), scheme)
        found = self.records.get(cache_key)
        if found is not None:
            return found
        entries = self.record(route, scheme)
        key = self.ids.name(RECORD_PREFIX, entries)
        for suffix, value in entries.items():
            self.out[key + suffix] = value
        self.records[cache_key] = key
        return key

    def record(self, route: Route, scheme: str) -> dict[str, str]:
        """The record's entries, keyed by their suffix after the record key ("" for the main)."""
        kind, slot_or_code, e500, weight, timeout = "b", "", 0, 0, 0
        host = pmode = pvalue = rscheme = rport = mirrors = affinity = max_body = auth = ""
        zone = rps = rpm = conns = lengths = ""
        k = plen = 0
        flags = ""
        entries: dict[str, str] = {}
        if route.status is not None:
            if route.status not in _STATUS_KINDS:
                raise ValueError(f"{route.source}: no record kind answers {route.status}")
            kind = _STATUS_KINDS[route.status]
        elif route.redirect is not None:
            redirect = route.redirect
            kind, slot_or_code = "r", str(int(redirect.status))
            rscheme = redirect.scheme or scheme
            host = redirect.hostname or ""
            if redirect.port is not None and _WELL_KNOWN.get(rscheme) != redirect.port:
                rport = f":{int(redirect.port)}"
            if redirect.path is not None:
                pmode, pvalue, k, plen = _path_fields(
                    redirect.path.type.value, redirect.path.value, route
                )
        else:
            slot_or_code, e500, weight = self._target(route)
            mirrors = _mirrors_field(route, self.assigned)
            if route.timeout is not None:
                timeout = max(1, round(route.timeout * 1000))
            if route.rewrite is not None:
                host = route.rewrite.hostname or ""
                path = route.rewrite.path
                if path is not None:
                    pmode, pvalue, k, plen = _path_fields(path.type.value, path.value, route)
            entries |= _filters(route, "q", self.shapes.request_filter_index)
            entries |= self._member_entries(route)
            if route.affinity is not None:
                affinity = str(self.shapes.affinity_index(route.affinity.name))
                entries["|c"] = encode_value(cookie_attributes(route, scheme))
            if route.policy is not None and route.policy.max_body:
                max_body = str(int(route.policy.max_body))
            if route.policy is not None and route.policy.auth is not None:
                auth = auth_id(route.policy.auth)
            rate = route.policy.rate if route.policy is not None else None
            if rate is not None:
                # The counters' key: the Ingress (hashed: no '|' or space) and the client.
                zone = "z" + hashlib.sha256(rate.zone.encode()).hexdigest()[:16]
                rps = str(rate.burst(rate.rps)) if rate.rps is not None else ""
                rpm = str(rate.burst(rate.rpm)) if rate.rpm is not None else ""
                conns = str(int(rate.connections)) if rate.connections is not None else ""
            sources = _source_entries(route) if sources_name(route) is None else {}
            if sources:
                entries |= sources
                flags += "s"
                # The prefix lengths its lists use: only those are looked up for it.
                lengths = self.shapes.source_length_field(
                    n.prefixlen for n, _v in _source_networks(route)
                )
                assert route.policy is not None and route.policy.sources is not None
                if route.policy.sources.allow:
                    flags += "l"
        cors = ""
        if kind not in _STATUS_KINDS.values() and route.cors is not None:
            cors = str(self.shapes.cors_index(route.cors.origin_regex))
            entries["|o"] = _cors_entry(route.cors)
        if kind not in _STATUS_KINDS.values():
            entries |= _filters(route, "p", self.shapes.response_filter_index)
        if any(s.startswith("|q") for s in entries):
            flags += "q"
        if any(s.startswith("|p") for s in entries):
            flags += "p"
        if any(s.startswith("|m") for s in entries):
            flags += "m"
        if kind == "b" and route.connect_timeout is not None:
            flags += "c"  # a connect timeout of its slot's own: its 503 answers 504
        # (the frontend tests these letters before reading the fields: haproxy.cfg.j2)
        flags += "".join(
            letter
            for letter, value in (
                ("b", max_body),
                ("u", auth),
                ("r", zone),
                ("k", affinity),
                ("o", cors),
                ("e", e500),
                ("t", timeout),
                ("h", host),
                ("w", pmode),
                ("i", mirrors),
            )
            if value
        )
        flags += {"b": "B", "r": "R"}.get(kind, kind)
        fields = (
            kind,
            slot_or_code,
            str(e500),
            str(weight),
            str(timeout),
            str(sum(FLAG_BITS[letter] for letter in flags)),
            host,
            pmode,
            pvalue,
            str(k),
            str(plen),
            rscheme,
            rport,
            mirrors,
            affinity,
            cors,
            max_body,
            auth,
            zone,
            rps,
            rpm,
            conns,
            lengths,
        )
        for value in fields:
            if "|" in value or any(c.isspace() for c in value):
                raise ValueError(f"{route.source}: {value!r} cannot be a record field")
        entries[""] = "|".join(fields)
        return entries

    def _member_entries(self, route: Route) -> dict[str, str]:
        """A split through member sockets (:func:`hop_members`): ``|m<i>`` -> the slot of
        member i's backend, ``|m<i>q<j>`` -> its request header changes (as ``|q<j>``)."""
        entries: dict[str, str] = {}
        for i, (backend, _weight, f) in enumerate(hop_members(route) or ()):
            entries[f"|m{i}"] = self.assigned[backend]
            for op, name, value in _ops(f):
                index = self.shapes.request_filter_index(name)
                entries[f"|m{i}q{index}"] = op + (encode_value(value) if op != "r" else "")
        return entries

    def _target(self, route: Route) -> tuple[str, int, int]:
        """(slot, weight answered 500, total weight) of a proxied row."""
        slot, e500, total = self._base_target(route)
        name = sources_name(route) or connect_name(route)
        if name is not None:
            slot = self.assigned[name]
        return slot, e500, total

    def _base_target(self, route: Route) -> tuple[str, int, int]:
        if not route.split:
            if route.backend is None:
                raise ValueError(f"{route.source}: a row with neither backend nor answer")
            return self.assigned[route.backend], 0, 0
        live = [w for w in route.split if w.weight > 0]
        invalid = sum(w.weight for w in live if w.backend is None)
        total = sum(w.weight for w in live)
        name = split_name(route)
        if name is None:
            backends = [w.backend for w in live if w.backend is not None]
            if not backends:
                raise ValueError(f"{route.source}: a split without a valid backend")
            slot = self.assigned[backends[0]]
        else:
            slot = self.assigned[name]
        return slot, invalid, (total if invalid else 0)

    # ---- groups

    def pointer(self, chain: Sequence[Route]) -> str:
        """The value of a path key whose requests get the rows ``chain`` (precedence order)."""
        per_scheme = {s: _scheme_chain(chain, s) for s in SCHEME_LETTER}
        first = per_scheme["http"]
        if len(first) == 1 and per_scheme["https"] == first and not first[0].conditional:
            owner = slot_owner(first[0])
            if owner is not None:
                return self.assigned[owner]
        if len(first) == 1 and per_scheme["https"] == first and signature(first[0]) is None:
            # One row without conditions: the key holds the row itself (a record, the same for
            # both schemes) rather than a group of one, which every request would evaluate.
            ref = self.row_ref(first[0], "http")
            if self.row_ref(first[0], "https") == ref:
                return ref
        group: dict[str, str] = {}
        for scheme, rows in per_scheme.items():
            letter = SCHEME_LETTER[scheme]
            for rank, route in enumerate(rows):
                index = self.shapes.signature_index(signature(route))
                key = f"|{index}|{letter}|{_values(route)}"
                group.setdefault(key, f"{rank}:{self.row_ref(route, scheme)}")
        name = self.ids.name(GROUP_PREFIX, group)
        for suffix, value in group.items():
            self.out[name + suffix] = value
        return name


def _scheme_chain(chain: Sequence[Route], scheme: str) -> list[Route]:
    """The rows a request of ``scheme`` may get, up to the first that needs nothing more."""
    rows = []
    for route in chain:
        if scheme not in route.schemes:
            continue
        rows.append(route)
        if signature(route) is None:
            break
    return rows


def _mirrors_field(route: Route, assigned: Mapping[str, str]) -> str:
    """Record field 14: the slot of each mirror, ``<slot>:<n>:<d>`` for one that gets n of
    every d requests (HTTPRouteRequestPercentageMirror: lua/mirror.lua counts them per row)."""
    fractions = route.mirror_fractions or tuple((1, 1) for _m in route.mirrors)
    parts = []
    for mirror, (n, d) in zip(route.mirrors, fractions, strict=True):
        slot = assigned[mirror]
        parts.append(slot if n == d else f"{slot}:{int(n)}:{int(d)}")
    return ",".join(parts)


def _path_fields(kind: str, value: str, route: Route) -> tuple[str, str, int, int]:
    """(mode, value, k, plen) of a path modifier: F and the new path, or P, the replacement
    without its trailing ``/``, the segments and the length of the matched prefix."""
    if kind == REPLACE_FULL:
        return "F", value, 0, 0
    if kind != REPLACE_PREFIX:
        raise ValueError(f"{route.source}: unknown path modifier {kind!r}")
    prefix = _prefix(route)
    return "P", value.rstrip("/"), prefix.count("/"), len(prefix)


def _filters(route: Route, letter: str, index: Callable[[str], int]) -> dict[str, str]:
    """Record entries of a header filter: ``|<letter><j>`` -> s/a + encoded value, or r."""
    response = letter == "p"
    return {
        f"|{letter}{index(name)}": op + (encode_value(value) if op != "r" else "")
        for op, name, value in _filter_ops(route, response=response)
    }


def _cors_entry(cors: Cors) -> str:
    """A CORS row's values (record entry ``|o``): ``cred|methods|headers|expose|max-age`` with
    cred ``t`` or empty, methods and headers ``e`` (echo the request's: a wildcard), ``l`` +
    the encoded list, or empty, expose encoded or empty."""

    def listed(values: tuple[str, ...]) -> str:
        if values == ("*",):
            return "e"
        return "l" + encode_value(", ".join(values)) if values else ""

    expose = cors.expose
    return "|".join(
        (
            "t" if cors.allow_credentials else "",
            listed(cors.allow_methods),
            listed(cors.allow_headers),
            encode_value(expose) if expose is not None else "",
            str(int(cors.max_age)),
        )
    )


def auth_id(auth: BasicAuth) -> str:
    """The name of a userlist: a hash of its realm and users (``a`` + 16 hex digits)."""
    blob = f"{auth.realm}\n{auth.fingerprint}"
    return "a" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def _source_networks(
    route: Route,
) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    """(network, a allowed / d denied) of the row's source ranges."""
    policy = route.policy
    if policy is None or policy.sources is None:
        return []
    out = [(ipaddress.ip_network(c), "d") for c in policy.sources.deny]
    out += [(ipaddress.ip_network(c), "a") for c in policy.sources.allow]
    return out


_SOURCE_MARKS = {"a": 1, "d": 2}  # the bits of a source entry: allowed, denied (or-ed)


def _source_entries(route: Route) -> dict[str, str]:
    """Record entries of the row's source ranges: ``|s<network address, hex>/<length>`` ->
    ``1`` allowed, ``2`` denied or ``3`` both (the key: what HAProxy's
    ``src,ipmask(...),hex`` gives for an address of that network, upper-case; notes §9: the
    frontend compares the client address masked to each length the shapes list)."""
    out: dict[str, str] = {}
    for net, mark in _source_networks(route):
        key = f"|s{net.network_address.packed.hex().upper()}/{net.prefixlen}"
        out[key] = str(int(out.get(key, "0")) | _SOURCE_MARKS[mark])
    return out


def _map_key_ok(text: str) -> str:
    if not text or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError(f"{text!r} cannot be a routes-map key")
    return text


def table_entries(
    vhost: VirtualHost, vk: str, assigned: Mapping[str, str], shapes: Shapes
) -> dict[str, str]:
    """The path keys of one virtual host with their groups and records (render.py adds the
    host keys). A path key's requests get its own rows, then those of the longest shorter
    prefix, and so on (the core's PathTable.match), so its group lists them all."""
    exact: dict[str, list[Route]] = {}
    prefix: dict[str, list[Route]] = {}
    for route in vhost.routes:  # canonical order: precedence within one path
        table = exact if route.path_type is PathType.EXACT else prefix
        table.setdefault(route.path, []).append(route)

    compiler = _Compiler(vk, assigned, shapes, {}, _Ids(vk))
    entries: dict[str, str] = {}
    for path, rows in exact.items():
        chain = rows + _prefix_chain(prefix, path, include_self=True)
        entries[_map_key_ok(f"={vk}{path}")] = compiler.pointer(chain)
    for path, rows in prefix.items():
        chain = rows + _prefix_chain(prefix, path, include_self=False)
        entries[_map_key_ok(f"^{vk}{path.rstrip('/')}/")] = compiler.pointer(chain)
    entries.update(compiler.out)
    return entries


def _prefix_chain(
    prefix: Mapping[str, list[Route]], path: str, *, include_self: bool
) -> list[Route]:
    """The Prefix rows a request path falls through to, longest first, as PathTable.match
    tries them: ``path`` itself (when ``include_self``), its parts ending before a ``/``, then
    ``/``."""
    rows: list[Route] = []
    if path == "/":
        return list(prefix.get("/", ())) if include_self else []
    end = len(path) if include_self else path.rfind("/")
    while end > 0:
        rows += prefix.get(path[:end], ())
        end = path.rfind("/", 0, end)
    rows += prefix.get("/", ())
    return rows

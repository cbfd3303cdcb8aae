"""A parser of nginx's configuration language and a simulator of nginx 1.22's request routing.

``parse_nginx`` reads the whole language as ``ngx_conf_read_token`` does (quoted strings with
their escapes, ``*_by_lua_block`` bodies); ``nginx_answer`` says what a request gets from the
parsed servers: server by exact name, else the longest matching leading wildcard, else the
default server; location ``=``, else the longest prefix; the rewrite phase (``set``, ``if``,
``return``) in order, over the variables ``$host``, ``$request_method``, the request-path
rule's ``$polyingress_bad_path`` and the maps of ``$host``; in Lua mode the backend a location
names for the one balancer upstream. Used by the renderer's property tests and the hostile-input
fuzzing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LUA_UPSTREAM = "polyingress_lua"  # render.LUA_UPSTREAM, restated
BACKEND_VARIABLE = "$polyingress_backend"

__all__ = [
    "NginxServer",
    "NginxSyntaxError",
    "Stmt",
    "nginx_answer",
    "nginx_servers",
    "nginx_tokens",
    "parse_nginx",
    "servers_of",
    "stmt_answer",
]


class NginxSyntaxError(AssertionError):
    pass


_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def nginx_tokens(text: str) -> list[tuple[str, bool | None]]:
    """(value, quoted) per token, (";"/"{"/"}", None) for punctuation: ngx_conf_read_token's
    rules, including the unescaping of quoted strings."""
    out: list[tuple[str, bool | None]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch == "{" and out and out[-1][1] is False and out[-1][0].endswith("_by_lua_block"):
            # ngx_lua reads the block as Lua source: up to the matching brace outside strings.
            depth, j, string = 1, i + 1, ""
            while depth:
                if j >= n:
                    raise NginxSyntaxError("unterminated Lua block")
                c = text[j]
                if string:
                    if c == "\\":
                        j += 1
                    elif c == string:
                        string = ""
                elif c in "\"'":
                    string = c
                elif c in "{}":
                    depth += 1 if c == "{" else -1
                j += 1
            out += [(text[i + 1 : j - 1].strip(), True), (";", None)]
            i = j
        elif ch in ";{}":
            out.append((ch, None))
            i += 1
        elif ch in "\"'":
            buf, i = [], i + 1
            while True:
                if i >= n:
                    raise NginxSyntaxError("unterminated quoted string")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    buf.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
                    i += 2
                elif c == ch:
                    i += 1
                    break
                else:
                    buf.append(c)
                    i += 1
            if i < n and text[i] not in " \t\r\n;{)":
                raise NginxSyntaxError(f"unexpected {text[i]!r} after a quoted string")
            out.append(("".join(buf), True))
        else:
            j = i
            while j < n and text[j] not in " \t\r\n;{":
                j += 2 if text[j] == "\\" else 1
            out.append((text[i:j], False))
            i = j
    return out


@dataclass
class Stmt:
    args: list[str]
    block: list[Stmt] | None

    @property
    def name(self) -> str:
        return self.args[0]

    def children(self, name: str) -> list[Stmt]:
        return [s for s in self.block or [] if s.name == name]


def parse_nginx(text: str) -> list[Stmt]:
    tokens = nginx_tokens(text)
    stack: list[list[Stmt]] = [[]]
    opened: list[list[str]] = []
    args: list[str] = []
    for value, quoted in tokens:
        if quoted is not None:
            args.append(value)
        elif value == ";":
            if not args:
                raise NginxSyntaxError("empty statement")
            stack[-1].append(Stmt(args, None))
            args = []
        elif value == "{":
            if not args:
                raise NginxSyntaxError("block without a name")
            stack.append([])
            opened.append(args)
            args = []
        else:
            if args or len(stack) == 1:
                raise NginxSyntaxError("unexpected '}'")
            block = stack.pop()
            stack[-1].append(Stmt(opened.pop(), block))
    if args or len(stack) != 1:
        raise NginxSyntaxError("unterminated statement or block")
    return stack[0]


@dataclass
class NginxServer:
    stmt: Stmt
    ports: set[int]
    default_ports: set[int]
    names: list[str]
    http: Stmt | None = None  # the enclosing http block (its maps)

    @property
    def locations(self) -> list[Stmt]:
        return self.stmt.children("location")


def servers_of(http: Stmt) -> list[NginxServer]:
    out = []
    for s in http.children("server"):
        ports, defaults = set(), set()
        for listen in s.children("listen"):
            if listen.args[1].startswith("unix:"):
                continue
            port = int(listen.args[1].rsplit(":", 1)[1])
            ports.add(port)
            if "default_server" in listen.args:
                defaults.add(port)
        names = [a for n in s.children("server_name") for a in n.args[1:]]
        out.append(NginxServer(s, ports, defaults, names, http))
    return out


def stmt_answer(stmt: Stmt) -> str:
    """What a ``return`` or ``proxy_pass`` statement answers: the status, or the upstream."""
    if stmt.name == "return":
        return stmt.args[1]
    assert stmt.name == "proxy_pass" and stmt.args[1].startswith("http://"), stmt.args
    return stmt.args[1].removeprefix("http://")


_VARIABLE = re.compile(r"\$[a-z_][a-z0-9_]*")


def _value(arg: str, variables: dict[str, str]) -> str:
    """A ``set`` value: a literal without variables, or exactly one variable."""
    if _VARIABLE.fullmatch(arg):
        return variables[arg]
    assert "$" not in arg, f"interpolation in {arg!r} is not simulated"
    return arg


def _if_holds(stmt: Stmt, variables: dict[str, str]) -> bool:
    """``if ($var)`` (false when empty or "0") or ``if ($var OP operand)`` with OP ``=``,
    ``!=`` (string comparison), ``~``, ``!~`` (case-sensitive regex search), as the rewrite
    module evaluates it."""
    if len(stmt.args) == 2:
        assert stmt.args[1].startswith("(") and stmt.args[1].endswith(")"), stmt.args
        return variables[stmt.args[1][1:-1]] not in ("", "0")
    assert len(stmt.args) == 5 and stmt.args[1].startswith("(") and stmt.args[4] == ")", stmt.args
    value = variables[stmt.args[1][1:]]
    op, operand = stmt.args[2], stmt.args[3]
    if op in ("=", "!="):
        return (value == operand) == (op == "=")
    assert op in ("~", "!~"), stmt.args
    found = re.search(operand, value) is not None
    return found if op == "~" else not found


def _rewrite(stmts: list[Stmt], variables: dict[str, str]) -> tuple[str | None, str | None]:
    """The rewrite phase over ``stmts``: (the answer of the ``return`` that ran, or None; the
    ``proxy_pass`` lent by the last ``if`` that held). An ``if`` that holds runs its own
    ``set``/``return`` and then the statements after it (nested ``if`` is not allowed); its
    configuration, with its ``proxy_pass`` if it has one, becomes the request's."""
    lent: str | None = None
    for stmt in stmts:
        if stmt.name == "set":
            variables[stmt.args[1]] = _value(stmt.args[2], variables)
        elif stmt.name == "return":
            return stmt_answer(stmt), lent
        elif stmt.name == "if" and _if_holds(stmt, variables):
            inner = stmt.block or []
            assert all(s.name in ("set", "return", "proxy_pass") for s in inner), stmt.args
            answer, _lent = _rewrite([s for s in inner if s.name != "proxy_pass"], variables)
            if answer is not None:
                return answer, lent
            proxies = [stmt_answer(s) for s in inner if s.name == "proxy_pass"]
            lent = proxies[0] if proxies else None
    return None, lent


def _bad_path(http: Stmt | None, target: str) -> bool:
    """The value of ``map $request_uri $polyingress_bad_path`` for ``target``."""
    assert http is not None
    (bad,) = [
        m for m in http.children("map") if m.args[1:] == ["$request_uri", "$polyingress_bad_path"]
    ]
    for entry in bad.block or []:
        if entry.args[0].startswith("~") and re.search(entry.args[0][1:], target):
            return entry.args[1] == "1"
    return False


def nginx_answer(
    servers: list[NginxServer], port: int, host: str, path: str, method: str = "GET"
) -> str:
    """nginx 1.22: server by exact name, else the longest matching leading wildcard, else the
    default server; location ``=``, else the longest prefix; the server's, then the location's
    rewrite phase (:func:`_rewrite`); then the content handler: the ``proxy_pass`` lent by an
    ``if`` that held, else the location's."""
    candidates = [s for s in servers if port in s.ports]
    exact = [s for s in candidates if host in s.names]
    wildcards = [
        (len(n), i)
        for i, s in enumerate(candidates)
        for n in s.names
        if n.startswith("*.") and host.endswith(n[1:])
    ]
    if exact:
        server = exact[0]
    elif wildcards:
        server = candidates[max(wildcards)[1]]
    else:
        server = next(s for s in candidates if port in s.default_ports)
    variables = {"$host": host, "$request_method": method}
    maps = server.http.children("map") if server.http is not None else []
    for m in maps:
        if m.args[1] == "$host":
            # The maps of shared server blocks (Lua mode): exact host keys, and a default.
            table = {e.args[0]: e.args[1] for e in m.block or []}
            variables[m.args[2]] = table.get(host, table.get("default", ""))
    if any(m.args[1:] == ["$request_uri", "$polyingress_bad_path"] for m in maps):
        # The request-path rule's map (render.PATH_RULE): its regex on the request line.
        variables["$polyingress_bad_path"] = "1" if _bad_path(server.http, path) else "0"
    rewrites = [s for s in server.stmt.block or [] if s.name in ("set", "if", "return")]
    answer, _lent = _rewrite(rewrites, variables)
    if answer is not None:
        return answer
    exact_loc = [loc for loc in server.locations if loc.args[1:] == ["=", path]]
    if exact_loc:
        location = exact_loc[0]
    else:
        prefixes = [
            loc for loc in server.locations if loc.args[1] != "=" and path.startswith(loc.args[-1])
        ]
        location = max(prefixes, key=lambda loc: len(loc.args[-1]))
    answer, lent = _rewrite(location.block or [], variables)
    if answer is not None:
        return answer
    if lent is None:
        lent = stmt_answer(next(s for s in location.block or [] if s.name == "proxy_pass"))
    if lent == LUA_UPSTREAM:
        # Lua mode: one upstream; the balancer proxies to the backend the location named.
        return variables[BACKEND_VARIABLE]
    return lent


def nginx_servers(text: str) -> list[NginxServer]:
    """The servers of the ``http`` block of a whole configuration."""
    (http,) = [s for s in parse_nginx(text) if s.name == "http"]
    return servers_of(http)

"""HAProxy 2.6 Runtime API client (admin stats socket and master CLI).

Facts this module relies on are in docs/notes/haproxy-2.6.md ("the notes"); the section
is cited where a behaviour is not obvious.

Framing: the admin socket is driven in ``prompt`` mode, one connection per call. In 2.6 every
reply is followed by the prompt ``"\\n> "`` (src/cli.c, CLI_ST_PROMPT). The non-prompt framing
("each reply ends with an empty line", notes §8) is NOT reliable: ``add server`` and ``del server``
errors such as ``No such backend.`` / ``No such server.`` / ``Only servers in maintenance mode can
be deleted.`` are emitted without a trailing newline, so in non-prompt mode their reply has no
empty line and merges with the next one (verified on 2.6.12). Non-prompt mode also closes the
session as soon as its input buffer runs empty, which truncates a batch written slowly.
"""

from __future__ import annotations

import csv
import enum
import functools
import logging
import re
import selectors
import socket
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Final, Literal

import tenacity

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "MAX_COMMAND_BYTES",
    "AlreadyExists",
    "Command",
    "CommandRejected",
    "Conflict",
    "ConnectionFailed",
    "MasterClient",
    "NotFound",
    "PermissionDenied",
    "ProcInfo",
    "ProcRole",
    "ProcTable",
    "ProtocolError",
    "ReloadFailed",
    "Reply",
    "RetryPolicy",
    "RuntimeApiError",
    "RuntimeClient",
    "ServerAdmin",
    "ServerOpState",
    "ServerState",
    "UnsafeArgument",
    "UsageError",
    "chunk_payload_lines",
    "classify_reply",
    "map_payload_line",
    "parse_map_entries",
    "parse_servers_state",
    "parse_show_info",
    "parse_show_proc",
]

log = logging.getLogger(__name__)

# Notes §8: tune.bufsize (16384) bounds one command INCLUDING its payload; above it HAProxy
# silently drops the command (or resets the connection). Keep a safety margin.
MAX_COMMAND_BYTES: Final = 15_000
DEFAULT_CHUNK_BYTES: Final = 14_000
# src/cli.c MAX_CLI_ARGS: further words are silently ignored.
MAX_WORDS: Final = 64

_PROMPT: Final = b"\n> "
_PAYLOAD_PROMPT: Final = b"+ "
_IO_CHUNK: Final = 65_536
# These would change the session framing this client depends on.
_SESSION_WORDS: Final = frozenset({"prompt", "quit"})


# --------------------------------------------------------------------------- errors


class RuntimeApiError(Exception):
    """Base class of every error raised by this module."""


class UnsafeArgument(RuntimeApiError, ValueError):
    """A command was refused before anything was sent."""


class ConnectionFailed(RuntimeApiError):
    """The socket could not be connected, even after the retry budget."""


class ProtocolError(RuntimeApiError):
    """The byte stream did not have the expected shape (EOF mid-batch, timeout, bad framing)."""

    def __init__(self, message: str, *, replies: Sequence[Reply] = ()) -> None:
        super().__init__(message)
        self.replies: tuple[Reply, ...] = tuple(replies)


class ReloadFailed(RuntimeApiError):
    """The master did not start a new worker (failed counter increased or timeout)."""


class CommandRejected(RuntimeApiError):
    """HAProxy answered a command with an error text."""

    def __init__(self, command: Command, reply: str) -> None:
        first = reply.strip().splitlines()[0] if reply.strip() else "(empty reply)"
        super().__init__(f"{command}: {first}")
        self.command = command
        self.reply = reply


class NotFound(CommandRejected):
    """Unknown backend, server, map, key, certificate..."""


class AlreadyExists(CommandRejected):
    """The object to create exists already (duplicate server name, certificate)."""


class UsageError(CommandRejected):
    """Unknown command, wrong arguments, unknown keyword, usage text."""


class Conflict(CommandRejected):
    """The object exists but its state does not allow the operation."""


class PermissionDenied(CommandRejected):
    """Socket level too low, or expert/experimental mode required."""


# --------------------------------------------------------------------------- commands

_WORD_FORBIDDEN: Final = {
    ";": "';' (the CLI splits commands on it)",
    "\\": "a backslash (the CLI unescapes it)",
}


def _describe_char(ch: str) -> str:
    names = {"\n": "a newline", "\r": "a carriage return", "\x00": "a NUL byte", "\t": "a tab"}
    if ch in names:
        return names[ch]
    if ch in _WORD_FORBIDDEN:
        return _WORD_FORBIDDEN[ch]
    if ch.isspace():
        return f"whitespace {ch!r} (the CLI splits words on it; use a payload)"
    return f"control character U+{ord(ch):04X}"


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch).startswith("C")


def _check_word(index: int, word: str) -> None:
    if not isinstance(word, str):
        raise UnsafeArgument(f"word {index}: expected str, got {type(word).__name__}")
    if not word:
        raise UnsafeArgument(f"word {index}: empty (the CLI would drop it)")
    for ch in word:
        if ch in _WORD_FORBIDDEN or ch.isspace() or _is_control(ch):
            raise UnsafeArgument(f"word {index} {word!r}: contains {_describe_char(ch)}")
    if "<<" in word:
        # src/cli.c switches to payload mode on any line ending with "<<", glued or not.
        raise UnsafeArgument(f"word {index} {word!r}: contains the payload marker '<<'")


def _normalise_payload(payload: str) -> str:
    text = payload[:-1] if payload.endswith("\n") else payload
    if not text:
        raise UnsafeArgument("payload: empty")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            raise UnsafeArgument(
                f"payload line {number}: empty or blank line (an empty line ends the payload)"
            )
        for ch in line:
            if _is_control(ch):
                raise UnsafeArgument(f"payload line {number}: contains {_describe_char(ch)}")
    return text


@dataclass(frozen=True, slots=True)
class Command:
    """One CLI command: words joined by single spaces, optionally followed by a ``<<`` payload.

    Validation happens at construction, so an unsafe command can never reach a socket. Words
    may not contain whitespace, ``;``, ``\\``, ``<<`` or control characters (notes §8: the CLI
    splits on whitespace and ``;`` and unescapes backslashes); values with spaces go into a
    payload, where ``;`` and ``\\`` are literal. A payload may not contain an empty line (it would
    end the payload early) nor control characters other than ``\\n``; one trailing newline is
    dropped. The encoded command must fit in MAX_COMMAND_BYTES (notes §8, tune.bufsize).
    """

    words: tuple[str, ...]
    payload: str | None = None

    def __post_init__(self) -> None:
        words = tuple(self.words)
        object.__setattr__(self, "words", words)
        if not words:
            raise UnsafeArgument("command: no words")
        if len(words) > MAX_WORDS:
            raise UnsafeArgument(f"command: {len(words)} words, the CLI reads at most {MAX_WORDS}")
        for index, word in enumerate(words):
            _check_word(index, word)
        verb = _significant_words(self)[:1]
        if verb and verb[0] in _SESSION_WORDS:
            raise UnsafeArgument(f"command {verb[0]!r}: session control is owned by the client")
        if self.payload is not None:
            object.__setattr__(self, "payload", _normalise_payload(self.payload))
        try:
            size = len(self.encode())
        except UnicodeEncodeError as exc:
            raise UnsafeArgument(f"command: not encodable as UTF-8 ({exc.reason})") from exc
        if size > MAX_COMMAND_BYTES:
            raise UnsafeArgument(
                f"command {' '.join(words[:3])!r}...: {size} bytes encoded, limit is "
                f"{MAX_COMMAND_BYTES} (HAProxy silently drops commands over tune.bufsize)"
            )

    @classmethod
    def of(cls, *words: str, payload: str | None = None) -> Command:
        return cls(tuple(words), payload)

    @classmethod
    def parse(cls, line: str, *, payload: str | None = None) -> Command:
        """Split on single spaces only, so a newline or tab stays inside a word and is refused."""
        return cls(tuple(word for word in line.split(" ") if word), payload)

    def encode(self) -> bytes:
        line = " ".join(self.words)
        if self.payload is None:
            return f"{line}\n".encode()
        return f"{line} <<\n{self.payload}\n\n".encode()

    def __str__(self) -> str:
        line = " ".join(self.words)
        return f"{line} <<" if self.payload is not None else line


def chunk_payload_lines(lines: Iterable[str], limit: int = DEFAULT_CHUNK_BYTES) -> Iterator[str]:
    """Group payload lines into ``\\n``-joined chunks of at most ``limit`` UTF-8 bytes each."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    chunk: list[str] = []
    size = 0
    for number, line in enumerate(lines, start=1):
        if "\n" in line:
            raise UnsafeArgument(f"payload line {number}: contains a newline")
        if not line.strip():
            raise UnsafeArgument(f"payload line {number}: empty or blank line")
        encoded = len(line.encode())
        if encoded > limit:
            raise UnsafeArgument(f"payload line {number}: {encoded} bytes, chunk limit is {limit}")
        added = encoded + (1 if chunk else 0)
        if chunk and size + added > limit:
            yield "\n".join(chunk)
            chunk, size, added = [], 0, encoded
        chunk.append(line)
        size += added
    if chunk:
        yield "\n".join(chunk)


def map_payload_line(key: str, value: str) -> str:
    """One ``add map <<`` payload line; refuses what HAProxy would store differently.

    2.6 src/map.c cuts the key at the first space/tab and skips blanks before the value, which
    then runs to the end of the line (notes §4: values may contain spaces).
    """
    if not key or any(ch.isspace() or _is_control(ch) for ch in key):
        raise UnsafeArgument(f"map key {key!r}: empty or contains whitespace/control characters")
    if not value or value != value.strip():
        raise UnsafeArgument(f"map key {key!r}: value {value!r} is empty or has outer whitespace")
    if any(_is_control(ch) for ch in value):
        raise UnsafeArgument(f"map key {key!r}: value {value!r} contains control characters")
    return f"{key} {value}"


# --------------------------------------------------------------------------- replies

_ErrorTable = tuple[tuple[type[CommandRejected], re.Pattern[str]], ...]


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{alt})" for alt in alternatives), re.MULTILINE)


# Phrases from the notes and from the 2.6 sources (src/cli.c, map.c, server.c, proxy.c,
# ssl_ckch.c, ssl_crtlist.c, mworker.c). Anchored at a line start.
_ERRORS: Final[_ErrorTable] = (
    (
        PermissionDenied,
        _rx(r"^Permission denied", r"^This command is restricted to \w+ mode"),
    ),
    (
        AlreadyExists,
        _rx(
            r"^Already exists a server with the same name",
            r"^(?:Certificate|CA file|CRL file) '.*' already exists",
            r"file already exists in this directory",
        ),
    ),
    (
        NotFound,
        _rx(
            r"^Unknown (?:map|ACL) identifier",
            r"^No such (?:backend|server|frontend|proxy|table)",
            r"^Can't find (?:backend|the target PID)",
            r"^entry not found",
            r"^Key not found",
            r"^Variable not found",
            r"^Can't display the .*Not found",
            r"^Can't replace a (?:certificate|CA file|CRL file) which is not referenced",
            r"^(?:certificate|crt-list|CA file|CRL file) '.*' (?:doesn't|does not) exist",
            r"^certificate '.*' can't be found in crt-list",
            r"^didn't find the specified filename",
        ),
    ),
    (
        Conflict,
        _rx(
            r"^Only servers in maintenance mode can be deleted",
            r"^Server still has connections attached",
            r"^This server cannot be removed at runtime",
            r"^Backend must use a dynamic load balancing",
            r"^Backend is using a static LB algorithm",
            r"^Version number (?:out of range|in the future)",
            r"^No ongoing transaction",
            r"^The ongoing transaction is about",
            r"^The transaction must contain at least",
            r"^inconsistencies between private key and certificate",
            r"^Can't (?:commit|update|abort|delete|create|edit|remove|show)\b",
            r"^Operations on certificates are currently locked",
            r"in use, can't be deleted",
            r"^Proxy is disabled",
            r"^Frontend was previously shut down",
            r"^Failed to (?:pause|resume) frontend",
            r"^cannot change health on a tracking server",
            r"^(?:Health check|Agent) was not configured on this server",
            r"^agent checks are not enabled",
            r"^Update for the current server address family is only supported",
            r"fqdn failed because",
        ),
    ),
    (
        UsageError,
        _rx(
            r"^Unknown command",
            r"^usage:",
            r"^'[^\n]*\bexpects?\b",
            r"^This command expects",
            r"^Missing (?:map|ACL) identifier",
            r"^Missing (?:value for key|version number)",
            r"^Malformed identifier",
            r"^Require 'backend/server'",
            r"^A (?:backend|frontend) name is expected",
            r"^(?:Integer|String) value expected",
            r"^Expects an integer value",
            r"^Value out of range",
            r"^Invalid timeout value",
            r"^set server <b>/<s> .* requires",
            r"^'set server <srv> ssl'",
            r"unknown keyword '",
            r"option is not accepted for dynamic server",
            r"^one of 'none', 'number', 'string' is a required argument",
            r"only one line of payload is supported",
            r"should contain the certificate name in the payload",
            r"^(?:Invalid payload|Can't load the payload)",
        ),
    ),
    (
        CommandRejected,
        _rx(
            r"^Failed to ",
            r"^Out of memory",
            r"^Internal error",
            r"^(?:Can't|Cannot|unable to) allocate memory",
            r"^Not enough memory",
        ),
    ),
)

# `set severity-output` (per session) prefixes messages; levels 0-3 are emerg..err.
_SEVERITY_ERROR: Final = re.compile(r"^\[(?:[0-3]|emerg|alert|crit|err)\]:")

# Commands whose only successful reply is empty (notes §2, §4, §8 and 2.6 sources): any text
# in their reply is an error even when the phrase is not in _ERRORS.
_SILENT: Final = frozenset(
    {
        ("add", "map"),
        ("set", "map"),
        ("del", "map"),
        ("clear", "map"),
        ("commit", "map"),
        ("add", "acl"),
        ("del", "acl"),
        ("clear", "acl"),
        ("commit", "acl"),
        ("enable", "server"),
        ("disable", "server"),
        ("enable", "health"),
        ("disable", "health"),
        ("enable", "agent"),
        ("disable", "agent"),
        ("set", "weight"),
    }
)
_SILENT_SET_SERVER: Final = frozenset({"state", "weight", "health", "agent"})
_READ_VERBS: Final = frozenset({"show", "get", "help"})


def _significant_words(command: Command) -> tuple[str, ...]:
    words = command.words
    while words and words[0].startswith("@"):
        words = words[1:]  # master CLI routing prefix (@1, @!<pid>, @master)
    return tuple(word.lower() for word in words)


def classify_reply(command: Command, text: str) -> type[CommandRejected] | None:
    """Return the error class a reply text stands for, or None when it looks successful.

    Conservative: unknown sentences count as success (``New server registered.``, ``IP changed
    from ...``), except for commands that print nothing on success. Output of show/get/help
    commands is data, so only its first line is matched against the error phrases.
    """
    body = text.strip("\n")
    if not body:
        return None
    words = _significant_words(command)
    scope = body.split("\n", 1)[0] if words[:1] and words[0] in _READ_VERBS else body
    if _SEVERITY_ERROR.match(scope):
        return CommandRejected
    for error, pattern in _ERRORS:
        if pattern.search(scope):
            return error
    if words[:2] in _SILENT or (
        words[:2] == ("set", "server") and len(words) > 3 and words[3] in _SILENT_SET_SERVER
    ):
        return CommandRejected
    return None


@dataclass(frozen=True, slots=True)
class Reply:
    """The text HAProxy answered to one command (trailing newlines removed)."""

    command: Command
    text: str
    ok: bool
    error: type[CommandRejected] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, command: Command, text: str) -> Reply:
        error = classify_reply(command, text)
        return cls(command, text, error is None, error)

    def raise_for_error(self) -> Reply:
        if self.error is not None:
            raise self.error(self.command, self.text)
        return self

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


# --------------------------------------------------------------------------- parsers


def parse_map_entries(text: str) -> list[tuple[str, str]]:
    """Parse ``show map`` output: ``0x<ref> <key> <value>`` per line (value may have spaces)."""
    entries: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line:
            continue
        parts = line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("0x"):
            raise ProtocolError(f"show map: unexpected line {line!r}")
        entries.append((parts[1], parts[2] if len(parts) == 3 else ""))
    return entries


def parse_show_info(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


class ServerOpState(enum.IntEnum):
    """srv_op_state (2.6 include/haproxy/server-t.h, SRV_ST_*)."""

    STOPPED = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3


class ServerAdmin(enum.IntFlag):
    """srv_admin_state bits (SRV_ADMF_*). Notes §3: config slots show 5 = FMAINT|CMAINT."""

    NONE = 0
    FMAINT = 0x01
    IMAINT = 0x02
    CMAINT = 0x04
    FDRAIN = 0x08
    IDRAIN = 0x10
    RMAINT = 0x20
    HMAINT = 0x40


_MAINT_MASK: Final = ServerAdmin.FMAINT | ServerAdmin.IMAINT | ServerAdmin.RMAINT
_DRAIN_MASK: Final = ServerAdmin.FDRAIN | ServerAdmin.IDRAIN
_MAINT_BITS: Final = int(_MAINT_MASK)
_DRAIN_BITS: Final = int(_DRAIN_MASK)
# A 10,000-backend world has 30,000 rows: convert each distinct state once, not per row.
_op_state = functools.lru_cache(maxsize=64)(ServerOpState)
_admin_state = functools.lru_cache(maxsize=256)(ServerAdmin)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerState:
    """One row of ``show servers state``; ``columns`` holds every column by header name."""

    backend_id: int
    backend: str
    server_id: int
    name: str
    address: str
    port: int
    op_state: ServerOpState
    admin_state: ServerAdmin
    weight: int
    fqdn: str | None
    columns: Mapping[str, str] = field(hash=False, compare=False, repr=False)

    @property
    def in_maintenance(self) -> bool:
        return bool(int(self.admin_state) & _MAINT_BITS)  # int math: enum ops are slow

    @property
    def draining(self) -> bool:
        return bool(int(self.admin_state) & _DRAIN_BITS)


_SERVER_STATE_REQUIRED: Final = (
    "be_id",
    "be_name",
    "srv_id",
    "srv_name",
    "srv_addr",
    "srv_op_state",
    "srv_admin_state",
    "srv_uweight",
    "srv_fqdn",
    "srv_port",
)


def parse_servers_state(text: str) -> list[ServerState]:
    """Parse ``show servers state``: line 1 is the format version ``1``, line 2 the header."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    if lines[0].strip() != "1":
        raise ProtocolError(f"show servers state: unsupported format version {lines[0]!r}")
    if len(lines) < 2 or not lines[1].startswith("#"):
        raise ProtocolError("show servers state: missing header line")
    header = lines[1].lstrip("#").split()
    missing = [name for name in _SERVER_STATE_REQUIRED if name not in header]
    if missing:
        raise ProtocolError(f"show servers state: header lacks {', '.join(missing)}")
    states: list[ServerState] = []
    for line in lines[2:]:
        values = line.split()
        if len(values) != len(header):
            raise ProtocolError(
                f"show servers state: {len(values)} columns, header has {len(header)}: {line!r}"
            )
        row = dict(zip(header, values, strict=True))
        try:
            states.append(
                ServerState(
                    backend_id=int(row["be_id"]),
                    backend=row["be_name"],
                    server_id=int(row["srv_id"]),
                    name=row["srv_name"],
                    address=row["srv_addr"],
                    port=int(row["srv_port"]),
                    op_state=_op_state(int(row["srv_op_state"])),
                    admin_state=_admin_state(int(row["srv_admin_state"])),
                    weight=int(row["srv_uweight"]),
                    fqdn=None if row["srv_fqdn"] == "-" else row["srv_fqdn"],
                    columns=MappingProxyType(row),
                )
            )
        except ValueError as exc:
            raise ProtocolError(f"show servers state: bad value in {line!r}: {exc}") from exc
    return states


class ProcRole(enum.StrEnum):
    MASTER = "master"
    WORKER = "worker"
    PROGRAM = "program"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcInfo:
    """One ``show proc`` line. ``failed`` exists only on the master line (``[failed: N]``)."""

    pid: int
    role: ProcRole
    name: str
    reloads: int
    uptime: timedelta
    version: str
    failed: int | None = None
    leaving: bool = False


@dataclass(frozen=True, slots=True)
class ProcTable:
    processes: tuple[ProcInfo, ...]

    @property
    def master(self) -> ProcInfo:
        for proc in self.processes:
            if proc.role is ProcRole.MASTER:
                return proc
        raise ProtocolError("show proc: no master line")

    @property
    def workers(self) -> tuple[ProcInfo, ...]:
        """Current workers only; workers still finishing after a reload are in old_workers."""
        return tuple(p for p in self.processes if p.role is ProcRole.WORKER and not p.leaving)

    @property
    def old_workers(self) -> tuple[ProcInfo, ...]:
        return tuple(p for p in self.processes if p.role is ProcRole.WORKER and p.leaving)

    @property
    def programs(self) -> tuple[ProcInfo, ...]:
        return tuple(p for p in self.processes if p.role is ProcRole.PROGRAM)

    @property
    def worker_pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self.workers)


_UPTIME: Final = re.compile(r"^(\d+)d(\d+)h(\d+)m(\d+)s$")
_MASTER_LINE: Final = re.compile(
    r"^(?P<pid>\d+)\s+master\s+(?P<reloads>\d+)(?:\s+\[failed:\s*(?P<failed>\d+)\])?"
    r"\s+(?P<uptime>\S+)\s+(?P<version>\S+)\s*$"
)
_CHILD_LINE: Final = re.compile(
    r"^(?P<pid>\d+)\s+(?P<name>\S+)\s+(?P<reloads>\d+)\s+(?P<uptime>\S+)\s+(?P<version>\S+)\s*$"
)


def _parse_uptime(value: str) -> timedelta:
    match = _UPTIME.match(value)
    if match is None:
        raise ProtocolError(f"show proc: bad uptime {value!r}")
    days, hours, minutes, seconds = (int(part) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_show_proc(text: str) -> ProcTable:
    """Parse the master's ``show proc`` (2.6 src/mworker.c cli_io_handler_show_proc)."""
    processes: list[ProcInfo] = []
    section = "master"
    for line in text.splitlines():
        if not line.strip() or line.startswith("#<"):
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip()
            continue
        if section == "master":
            match = _MASTER_LINE.match(line)
            if match is None:
                raise ProtocolError(f"show proc: unexpected master line {line!r}")
            failed = match["failed"]
            processes.append(
                ProcInfo(
                    pid=int(match["pid"]),
                    role=ProcRole.MASTER,
                    name="master",
                    reloads=int(match["reloads"]),
                    failed=None if failed is None else int(failed),
                    uptime=_parse_uptime(match["uptime"]),
                    version=match["version"],
                )
            )
            continue
        match = _CHILD_LINE.match(line)
        if match is None:
            raise ProtocolError(f"show proc: unexpected line {line!r} in section {section!r}")
        role = ProcRole.PROGRAM if "program" in section else ProcRole.WORKER
        processes.append(
            ProcInfo(
                pid=int(match["pid"]),
                role=role,
                name=match["name"],
                reloads=int(match["reloads"]),
                uptime=_parse_uptime(match["uptime"]),
                version=match["version"],
                leaving=section.startswith("old"),
            )
        )
    if not any(proc.role is ProcRole.MASTER for proc in processes):
        # Seen right after `reload`: the re-executing master accepts, then closes silently.
        raise ProtocolError(f"show proc: no master line in {text[:80]!r}")
    return ProcTable(tuple(processes))


# --------------------------------------------------------------------------- transport


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Connect retries while HAProxy (re)starts: the socket is missing or refuses connections.

    Notes §1: the master socket refuses connections for a moment during ``reload``. Only the
    connect is retried, never a command that may have reached HAProxy. ``total=0`` = one try.
    """

    total: float = 5.0
    initial: float = 0.02
    maximum: float = 0.5
    retry_on: tuple[type[OSError], ...] = (ConnectionRefusedError, FileNotFoundError)


@dataclass(frozen=True, slots=True)
class _Transfer:
    received: bytes
    sent_all: bool
    timed_out: bool
    error: OSError | None


def _duplex(sock: socket.socket, data: bytes, timeout: float, *, half_close: bool) -> _Transfer:
    """Write ``data`` while reading until EOF; ``timeout`` is the longest time without progress.

    Notes §7: a pipelined batch stalls (then dies on ``stats timeout``) if replies are not read
    while writing, so both directions run in one select loop.
    """
    sock.setblocking(False)
    view = memoryview(data)
    sent = 0
    chunks: list[bytes] = []
    error: OSError | None = None
    writing = bool(data)
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0))
        if not writing and half_close:
            sock.shutdown(socket.SHUT_WR)
        while True:
            events = selector.select(timeout)
            if not events:
                return _Transfer(b"".join(chunks), sent == len(data), True, error)
            mask = events[0][1]
            if writing and mask & selectors.EVENT_WRITE:
                try:
                    sent += sock.send(view[sent : sent + _IO_CHUNK])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as exc:
                    error, writing = exc, False
                    selector.modify(sock, selectors.EVENT_READ)
                else:
                    if sent == len(data):
                        writing = False
                        selector.modify(sock, selectors.EVENT_READ)
                        if half_close:
                            try:
                                sock.shutdown(socket.SHUT_WR)
                            except OSError as exc:
                                error = exc
            if mask & selectors.EVENT_READ:
                try:
                    chunk = sock.recv(_IO_CHUNK)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    error = error or exc
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    return _Transfer(b"".join(chunks), sent == len(data), False, error)


def _decode(raw: bytes) -> str:
    # Notes §6: some outputs carry NUL bytes (show ssl crt-list); never fail on bad UTF-8.
    return raw.decode("utf-8", errors="replace").rstrip("\n")


def _as_command(cmd: Command | str) -> Command:
    return cmd if isinstance(cmd, Command) else Command.parse(cmd)


class _UnixCli:
    def __init__(
        self, path: str, *, timeout: float = 5.0, retry: RetryPolicy | None = None
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.path = path
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def _connect_once(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        return sock

    def _connect(self) -> socket.socket:
        policy = self.retry
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(policy.total),
            wait=tenacity.wait_exponential(multiplier=policy.initial, max=policy.maximum),
            retry=tenacity.retry_if_exception_type(policy.retry_on),
            reraise=True,
            before_sleep=self._log_retry,
        )
        try:
            return retrying(self._connect_once)
        except OSError as exc:
            raise ConnectionFailed(f"{self.path}: {exc.strerror or exc}") from exc

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        reason = outcome.exception() if outcome is not None else None
        log.debug("connect %s failed (%s), attempt %d", self.path, reason, state.attempt_number)


class RuntimeClient(_UnixCli):
    """Client of the worker's admin socket (``stats socket ... level admin``).

    Every call opens its own connection (so the object is thread-safe and never meets a session
    closed by ``stats timeout``), switches it to prompt mode, pipelines all commands while
    reading replies, then sends ``quit``. Notes §7: a batch of 10k commands takes ~30 ms.
    """

    def execute(self, cmd: Command | str, *, check: bool = True) -> Reply:
        reply = self.execute_batch([cmd])[0]
        return reply.raise_for_error() if check else reply

    def execute_batch(self, cmds: Iterable[Command | str], *, check: bool = False) -> list[Reply]:
        """Run commands in order on ONE connection; HAProxy runs all of them even after an error.

        With ``check=True`` the first failed reply is raised after the whole batch ran.
        """
        commands = [_as_command(cmd) for cmd in cmds]  # validate everything before connecting
        if not commands:
            return []
        data = b"".join([b"prompt\n", *(command.encode() for command in commands), b"quit\n"])
        with self._connect() as sock:
            transfer = _duplex(sock, data, self.timeout, half_close=False)
        replies = self._split(commands, transfer)
        if check:
            for reply in replies:
                reply.raise_for_error()
        return replies

    def _split(self, commands: Sequence[Command], transfer: _Transfer) -> list[Reply]:
        pieces = transfer.received.split(_PROMPT)
        if pieces[0]:
            raise ProtocolError(f"{self.path}: unexpected data before the first prompt")
        complete = pieces[1:-1]  # each one was followed by a prompt
        replies = [
            Reply.of(command, _decode(_strip_payload_prompts(command, raw)))
            for command, raw in zip(commands, complete, strict=False)
        ]
        if len(complete) > len(commands):
            raise ProtocolError(
                f"{self.path}: {len(complete)} reply blocks for {len(commands)} commands (a reply "
                "contained a line starting with '> '); the commands were executed",
                replies=(),
            )
        if len(complete) < len(commands):
            if transfer.timed_out:
                why = f"no data for {self.timeout} s"
            elif transfer.error:
                why = str(transfer.error)
            else:
                why = "connection closed"
            raise ProtocolError(
                f"{self.path}: {why} after {len(complete)} of {len(commands)} replies; later "
                "commands may or may not have been applied",
                replies=replies,
            )
        if pieces[-1]:
            raise ProtocolError(f"{self.path}: unexpected data after the last reply")
        return replies

    # ---- maps (notes §4)

    def show_map(self, map_id: str, *, version: int | None = None) -> list[tuple[str, str]]:
        words = ("show", "map", *_version_word(version), map_id)
        return parse_map_entries(self.execute(Command(words)).text)

    def prepare_map(self, map_id: str) -> int:
        text = self.execute(Command.of("prepare", "map", map_id)).text
        match = re.search(r"New version created: (\d+)", text)
        if match is None:
            raise ProtocolError(f"prepare map {map_id}: unexpected reply {text!r}")
        return int(match[1])

    def commit_map(self, map_id: str, version: int) -> None:
        self.execute(Command.of("commit", "map", f"@{version}", map_id))

    def add_map_payload(
        self,
        map_id: str,
        entries: Iterable[tuple[str, str]],
        version: int | None = None,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> int:
        """Bulk ``add map [@ver] <map> <<`` in payload chunks on one connection; returns chunks.

        Notes §8: a command over tune.bufsize is dropped silently, hence chunks < 15 KB.
        ``add map`` does not de-duplicate keys (notes §4).
        """
        lines = (map_payload_line(key, value) for key, value in entries)
        words = ("add", "map", *_version_word(version), map_id)
        commands = [Command(words, chunk) for chunk in chunk_payload_lines(lines, chunk_bytes)]
        self.execute_batch(commands, check=True)
        return len(commands)

    def replace_map(self, map_id: str, entries: Iterable[tuple[str, str]]) -> int:
        """Atomically swap the map content: prepare, fill the new version, commit (notes §4)."""
        version = self.prepare_map(map_id)
        self.add_map_payload(map_id, entries, version)
        self.commit_map(map_id, version)
        return version

    # ---- servers (notes §2)

    def show_servers_state(self, backend: str | None = None) -> list[ServerState]:
        words = ("show", "servers", "state", *((backend,) if backend else ()))
        return parse_servers_state(self.execute(Command(words)).text)

    def add_server(self, backend: str, server: str, address: str, *options: str) -> Reply:
        """``add server``; the server starts in maintenance, call enable_server afterwards.

        Notes §2: the ``enabled`` keyword leaves the server out of the LB tree and later
        corrupts the backend's counters, so it is refused here.
        """
        if "enabled" in options:
            raise UnsafeArgument(f"add server {backend}/{server}: use enable_server, not 'enabled'")
        return self.execute(Command.of("add", "server", f"{backend}/{server}", address, *options))

    def enable_server(self, backend: str, server: str) -> None:
        self.execute(Command.of("enable", "server", f"{backend}/{server}"))

    def set_server_state(
        self, backend: str, server: str, state: Literal["ready", "drain", "maint"]
    ) -> None:
        self.execute(Command.of("set", "server", f"{backend}/{server}", "state", state))

    def set_server_addr(
        self, backend: str, server: str, address: str, port: int | None = None
    ) -> str:
        port_words = ("port", str(port)) if port is not None else ()
        words = ("set", "server", f"{backend}/{server}", "addr", address, *port_words)
        return self.execute(Command(words)).text

    def del_server(self, backend: str, server: str) -> Reply:
        return self.execute(Command.of("del", "server", f"{backend}/{server}"))

    # ---- misc

    def show_info(self) -> dict[str, str]:
        return parse_show_info(self.execute(Command.of("show", "info")).text)

    def show_ssl_certs(self) -> list[str]:
        """Committed certificate names; an ongoing transaction (``*name``) is left out."""
        names: list[str] = []
        section = ""
        for line in self.execute(Command.of("show", "ssl", "cert")).lines:
            if line.startswith("#"):
                section = line.lstrip("#").strip()
            elif line and section == "filename":
                names.append(line)
        return names

    def show_stat(self) -> list[dict[str, str]]:
        text = self.execute(Command.of("show", "stat")).text
        lines = text.splitlines()
        if not lines or not lines[0].startswith("# "):
            raise ProtocolError("show stat: missing CSV header")
        header = lines[0][2:].split(",")
        rows = csv.reader(lines[1:])
        return [
            {name: value for name, value in zip(header, row, strict=False) if name}
            for row in rows
            if row
        ]


def _version_word(version: int | None) -> tuple[str, ...]:
    if version is None:
        return ()
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise UnsafeArgument(f"map version {version!r}: expected a non-negative int")
    return (f"@{version}",)


def _strip_payload_prompts(command: Command, raw: bytes) -> bytes:
    # In prompt mode the CLI answers every line of a payload command with "+ " (src/cli.c).
    if command.payload is None:
        return raw
    budget = command.payload.count("\n") + 2
    while budget and raw.startswith(_PAYLOAD_PROMPT):
        raw = raw[len(_PAYLOAD_PROMPT) :]
        budget -= 1
    return raw


class MasterClient(_UnixCli):
    """Client of the master CLI (``haproxy -W -S master.sock``), one command per connection.

    Non-prompt mode plus a half-close: the master answers one command and closes (notes §1).
    """

    def execute(self, cmd: Command | str, *, check: bool = True) -> Reply:
        command = _as_command(cmd)
        with self._connect() as sock:
            transfer = _duplex(sock, command.encode(), self.timeout, half_close=True)
        if transfer.timed_out:
            raise ProtocolError(f"{self.path}: no reply to {command} within {self.timeout} s")
        reply = Reply.of(command, _decode(transfer.received))
        return reply.raise_for_error() if check else reply

    def worker_command(
        self, cmd: Command | str, *, pid: int | None = None, check: bool = True
    ) -> Reply:
        """Run a command in the current worker (``@1``) or in a given process (``@!<pid>``)."""
        command = _as_command(cmd)
        target = "@1" if pid is None else f"@!{int(pid)}"
        return self.execute(Command((target, *command.words), command.payload), check=check)

    def show_proc(self) -> ProcTable:
        return parse_show_proc(self.execute(Command.of("show", "proc")).text)

    def reload(self, *, timeout: float = 10.0, poll_interval: float = 0.05) -> tuple[int, ...]:
        """Reload and wait for the new worker(s); returns their pids.

        Notes §1: 2.6 prints nothing for ``reload`` and closes the connection, so success is
        read from ``show proc``: the worker pid set changes. A failed reload (bad config) leaves
        the old worker serving and increments the master's ``[failed: N]``; the reason only goes
        to the master's stderr, so validate with ``haproxy -c`` first.
        """
        before = self.show_proc()
        old_pids = before.worker_pids
        failed_before = before.master.failed
        try:
            self.execute(Command.of("reload"), check=False)
        except ProtocolError:
            log.debug("reload: no EOF from %s, polling show proc anyway", self.path)
        deadline = time.monotonic() + timeout
        while True:
            try:
                table: ProcTable | None = self.show_proc()
            except (ConnectionFailed, ProtocolError) as exc:
                log.debug("reload: show proc failed (%s), retrying", exc)
                table = None
            if table is not None:
                failed = table.master.failed
                if failed is not None and failed_before is not None and failed > failed_before:
                    raise ReloadFailed(
                        f"{self.path}: reload failed (failed counter {failed_before} -> {failed}); "
                        f"worker(s) {sorted(table.worker_pids)} keep serving, see the master's "
                        "stderr"
                    )
                new_pids = table.worker_pids - old_pids
                if new_pids:
                    log.info("reload: new worker(s) %s, old %s", sorted(new_pids), sorted(old_pids))
                    return tuple(sorted(new_pids))
            if time.monotonic() >= deadline:
                raise ReloadFailed(
                    f"{self.path}: no new worker within {timeout} s (still {sorted(old_pids)})"
                )
            time.sleep(poll_interval)

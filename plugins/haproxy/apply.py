"""Make a running HAProxy serve a new model: Runtime API first, a reload only when unavoidable.

Facts are from docs/notes/haproxy-2.6.md ("the notes").

* Endpoints: dynamic servers. ``add server`` then ``enable server`` (never the ``enabled``
  keyword, notes §2); a removed endpoint is put in maintenance (no new request; in-flight ones
  finish) and deleted once none is in use (idle connections are closed by passing it through
  ``drain`` back to ``maint``), or after the drain timeout with ``shutdown sessions``.
  Server changes are planned from what HAProxy reports (``show servers state``), not from what
  we believe it holds, and read back afterwards.
* Routes: one map (render.py explains the keys). A change touching one entry, or only virtual
  hosts that appear or disappear (their rows are written while the host key is absent, the host
  key last; removal in the opposite order), is a sequence of single-entry commands, each atomic.
  Gateway API groups and records (rows.py) are named by their contents: new ones are added
  first (nothing points to them yet), then the one key pointing to them changes, then the old
  ones are deleted; two pointers of one host changing, or an entry no CLI word can carry (a
  ``;`` in a path), swap the whole map.
  Anything else is a ``prepare map``/``add map @v``/``commit map @v``: the whole table is
  swapped at once (notes §4), so no request sees a half-applied change.
* New Service (or weighted split): a spare slot backend; its servers are filled before a route
  points at it. A slot freed by a removed Service is emptied after its routes are gone, and
  reused by a later apply only. A split whose weights changed keeps its slot: ``set server
  weight`` on its servers.
* Gateway API shapes (rows.py): a model needing a header or query name, or a bound, the running
  configuration lacks reloads; a reload keeps the names it had (so they reload once).
* Source lists (rows.sources_name): a row with its own lists has a slot of its own, whose map
  file (sources/<slot>.map) holds the verdict of every client network. A slot taking such an
  owner gets its file's entries (``prepare map``, ``add map @v``, ``commit map @v``: one atomic
  swap) before a route points at it; a freed slot's are emptied after its routes are gone. A
  list change is a new owner: a new slot, no reload.
* Certificates: ``new``/``set``/``commit ssl cert`` and ``add``/``del ssl crt-list`` (notes §6).
* Every runtime change is mirrored to disk (map file, crt-list, PEMs, haproxy.cfg with real
  ``server`` lines), because nothing set at run time survives a reload (notes §2-§6).
* Reload only when the spare pool is exhausted, a global setting changed, or HAProxy refused a
  runtime change: render everything, ``haproxy -c``, reload through the master CLI, confirm the
  new worker with ``show proc`` (notes §1), then read everything back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from polyingress.core import (
    ApplyError,
    ApplyResult,
    Certificate,
    HostKind,
    ModelDiff,
    ReloadReason,
    RouteModel,
    Stopwatch,
    write_atomic,
)

from .metrics import DRIFT_REPAIRED, RELOADS, RUNTIME_COMMANDS, SPARE_SLOTS
from .process import ConfigInvalid, HAProxyProcess
from .render import (
    CONFIG_FILE,
    CRT_LIST,
    DEFAULT_KEY,
    FALLBACK_PEM,
    MIRROR_LUA,
    REDIRECT_VALUE,
    ROUTES_MAP,
    SOURCES_DIR,
    SUFFIXES_KEY,
    CrtEntry,
    RenderSettings,
    Server,
    SlotTable,
    Tuning,
    cert_file,
    crt_entries,
    map_entries,
    mirror_lua,
    pem_bundle,
    render_config,
    render_crt_list,
    render_map,
    slot_number,
    slot_servers,
    slot_sources,
    source_file,
    source_text,
    tuning_of,
    vhost_entries,
    vhost_key,
)
from .rows import (
    GROUP_PREFIX,
    RECORD_PREFIX,
    SPLIT_PREFIX,
    Shapes,
    connect_ms,
    is_hop,
    slot_base,
    source_lists,
    split_members,
    wanted_names,
)
from .runtime import (
    Command,
    CommandRejected,
    Conflict,
    NotFound,
    ProtocolError,
    ReloadFailed,
    Reply,
    RuntimeApiError,
    RuntimeClient,
    ServerState,
    UnsafeArgument,
    chunk_payload_lines,
    map_payload_line,
    parse_map_entries,
    parse_servers_state,
)

__all__ = [
    "Applier",
    "ApplyOptions",
    "DriftError",
    "LiveState",
    "RoutePlan",
    "group_entries",
    "parse_crt_list",
    "parse_servers_conn",
    "plan_routes",
    "plan_servers",
    "update_entries",
]

log = logging.getLogger(__name__)

SECRET_MODE = 0o600
RELOAD_SPARE_POOL = ReloadReason.RUNTIME_CAPACITY  # no spare backend slot for a new Service
RELOAD_SETTINGS = ReloadReason.SETTINGS_CHANGED
RELOAD_REFUSED = ReloadReason.RUNTIME_FAILED  # the Runtime API refused a change
RELOAD_CERT_SIZE = ReloadReason.RUNTIME_UNSUPPORTED  # a certificate too large for one command
RELOAD_DRIFT = ReloadReason.DRIFT_REPAIRED  # drift not repairable at run time
# A Gateway API row needs a header or query parameter name the configuration does not read
# (HAProxy 2.6 reads them only by a name written in haproxy.cfg: rows.py), or a CORS filter's
# allowed-Origin regex it does not have (a regex is configuration too).
RELOAD_NEW_NAME = ReloadReason.RUNTIME_UNSUPPORTED
# A new proxy-connect-timeout value (a slot section of its own: rows.connect_name).
RELOAD_CONNECT_TIMEOUT = ReloadReason.RUNTIME_UNSUPPORTED


class DriftError(Exception):
    """HAProxy still differs from the model after a repair."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyOptions:
    spare_backends: int = 64
    drain_timeout: float = 30.0


@dataclass(slots=True, kw_only=True)
class LiveState:
    """What the running HAProxy holds, as far as we know (re-read before trusting it)."""

    slots: SlotTable
    routes: dict[str, str]
    groups: dict[str, dict[str, str]]  # vhost key ("" for default) -> its entries
    crt_list: dict[str, tuple[str, ...]]  # cert file -> SNI filters
    certs: dict[str, str]  # cert file -> fingerprint (sha256, as in the model)
    tuning: Tuning
    shapes: Shapes  # the names and bounds the configuration evaluates (rows.py)
    draining: dict[tuple[str, str], float] = field(default_factory=dict)  # -> deadline
    # slot -> the connect timeout (ms) its section was loaded with (rows.connect_name owners)
    loaded_connect: dict[str, int] = field(default_factory=dict)
    # slot -> the verdicts its source map holds (rows.sources_name owners; absent: none)
    sources: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    dirty: bool = False  # a failed apply may have left HAProxy between two models


# --------------------------------------------------------------------------- pure planning


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Single-entry commands in a safe order, or ``full`` (swap the whole map atomically)."""

    commands: tuple[Command, ...] = ()
    full: bool = False
    changed: int = 0


def _group(key: str) -> str:
    """The virtual host (key) an entry belongs to; "" for the global ones."""
    if key in (DEFAULT_KEY, SUFFIXES_KEY):
        return ""
    if key[0] in "@r":
        return key[1:]
    if key[0] in _CONTENT:
        return key[1:].split("#", 1)[0]
    return key[1:].split("/", 1)[0]


# Groups and records (rows.py) are reached only through a path key's value: content-addressed,
# they are only ever added (before the key pointing to them) or deleted (after).
_CONTENT = (GROUP_PREFIX, RECORD_PREFIX)


def _cli_safe(key: str, value: str | None) -> bool:
    """True when a single ``add/set/del map`` command can carry the entry (a ``;`` in a
    Gateway API path cannot be a CLI word; the payload of a whole-map swap carries it)."""
    try:
        Command.of("set", "map", ROUTES_MAP, key, *(() if value is None else (value,)))
    except UnsafeArgument:
        return False
    return True


def _entry_command(key: str, current: Mapping[str, str], desired: Mapping[str, str]) -> Command:
    if key not in desired:
        return Command.of("del", "map", ROUTES_MAP, key)
    if key not in current:
        return Command.of("add", "map", ROUTES_MAP, key, desired[key])
    return Command.of("set", "map", ROUTES_MAP, key, desired[key])


def plan_routes(
    current: Mapping[str, str], desired: Mapping[str, str], keys: Iterable[str] | None = None
) -> RoutePlan:
    """How to turn the map ``current`` into ``desired`` so that every request sees one or the
    other. A request reads one vhost group (``@vk``, ``=vk…``, ``^vk…``, ``rvk``) and maybe
    ``default``; a group that a request can reach may change by one entry only. ``keys``: the
    only keys that may differ (all when None)."""
    candidates = current.keys() | desired.keys() if keys is None else set(keys)
    changed = sorted(k for k in candidates if current.get(k) != desired.get(k))
    if not changed:
        return RoutePlan()
    groups: dict[str, list[str]] = {}
    for key in changed:
        groups.setdefault(_group(key), []).append(key)
    if "" in groups and len(groups) > 1:
        return RoutePlan(full=True, changed=len(changed))
    if not all(_cli_safe(k, desired.get(k)) for k in changed):
        return RoutePlan(full=True, changed=len(changed))
    added: list[str] = []
    pointers: list[str] = []
    deleted: list[str] = []
    for name in sorted(groups):
        members = groups[name]
        content = [k for k in members if k[0] in _CONTENT]
        if any(k in current and k in desired for k in content):
            return RoutePlan(full=True, changed=len(changed))  # content never changes in place
        added += [k for k in content if k not in current]
        deleted += [k for k in content if k not in desired]
        members = [k for k in members if k[0] not in _CONTENT]
        host = f"@{name}"
        rows = [k for k in members if k != host]
        if host in members and host not in current:  # appears: rows first, unreachable till host
            ordered = [*rows, host]
        elif host in members and host not in desired:  # disappears: unreachable first
            ordered = [host, *rows]
        elif len(members) <= 1:
            ordered = members
        else:
            return RoutePlan(full=True, changed=len(changed))
        pointers += ordered
    commands = [_entry_command(k, current, desired) for k in (*added, *pointers, *deleted)]
    return RoutePlan(commands=tuple(commands), changed=len(changed))


# HAProxy 2.6 gives a server added at run time no idle-connection pool (`show servers conn`:
# purge_delay 0, idle_lim 0): every request opened a new connection to the pod, a third of the
# throughput of a server from the configuration file. These are the config-file defaults.
DYNAMIC_SERVER_POOL = ("pool-purge-delay", "5s", "pool-max-conn", "-1")


def plan_servers(
    slot: str, actual: Sequence[ServerState], desired: Sequence[Server]
) -> tuple[list[Command], list[str]]:
    """Commands making ``slot`` serve exactly ``desired``; and the servers to retire (put in
    maintenance now, deleted once drained)."""
    want = {s.name: s for s in desired}
    commands: list[Command] = []
    retire: list[str] = []
    seen: set[str] = set()
    for state in actual:
        seen.add(state.name)
        ref = f"{slot}/{state.name}"
        target = want.get(state.name)
        if target is None:
            retire.append(state.name)
            if not state.in_maintenance:
                commands.append(Command.of("set", "server", ref, "state", "maint"))
            continue
        host, port = target.host_port
        if (state.address, state.port) != (host, port):
            commands.append(Command.of("set", "server", ref, "addr", host, "port", str(port)))
        if state.weight != target.weight:
            commands.append(Command.of("set", "server", ref, "weight", str(target.weight)))
        if state.in_maintenance or state.draining:
            commands.append(Command.of("set", "server", ref, "state", "ready"))
    for name in sorted(want.keys() - seen):
        ref = f"{slot}/{name}"
        server = want[name]
        weight = () if server.weight == 1 else ("weight", str(server.weight))
        # Notes §2: add (starts in maintenance), then enable; never the `enabled` keyword.
        commands.append(
            Command.of(
                "add", "server", ref, server.address, *weight, *server.options, *DYNAMIC_SERVER_POOL
            )
        )
        commands.append(Command.of("enable", "server", ref))
    return commands, retire


@dataclass(frozen=True, slots=True)
class CrtLine:
    cert: str
    number: int
    filters: tuple[str, ...]


def parse_crt_list(text: str) -> list[CrtLine]:
    """``show ssl crt-list -n <list>``: ``<file>:<line> [options] filters...`` per line."""
    lines: list[CrtLine] = []
    for raw in text.replace("\0", "").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        words = raw.split()
        name, _, number = words[0].rpartition(":")
        filters: list[str] = []
        in_options = False
        for word in words[1:]:
            if word.startswith("["):
                in_options = True
            if not in_options:
                filters.append(word)
            if word.endswith("]"):
                in_options = False
        lines.append(CrtLine(name, int(number), tuple(filters)))
    return lines


def parse_servers_conn(text: str) -> dict[str, int]:
    """``show servers conn <backend>``: server name -> connections in use (``used_cur``)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("#"):
        return {}
    header = lines[0].lstrip("#").split()
    column = header.index("used_cur") if "used_cur" in header else None
    found: dict[str, int] = {}
    for line in lines[1:]:
        words = line.split()
        if column is None or len(words) <= column or "/" not in words[0]:
            continue
        found[words[0].split("/", 1)[1]] = int(words[column])
    return found


def _is_default(line: CrtLine) -> bool:
    return line.cert == FALLBACK_PEM and line.number == 1


def _sha1(cert_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def _cert_payload_ok(bundle: str, name: str) -> bool:
    try:
        Command(("set", "ssl", "cert", name), bundle)
    except UnsafeArgument:
        return False
    return True


# --------------------------------------------------------------------------- the applier


class Runtime:
    """The admin-socket client, counting every command sent (metrics)."""

    def __init__(self, client: RuntimeClient) -> None:
        self.client = client
        self.sent = 0

    def batch(self, commands: Sequence[Command], *, check: bool = True) -> list[Reply]:
        if not commands:
            return []
        for command in commands:
            RUNTIME_COMMANDS.labels(" ".join(command.words[:2])).inc()
        self.sent += len(commands)
        return self.client.execute_batch(commands, check=check)

    def one(self, command: Command) -> Reply:
        return self.batch([command])[0]


class _Desired:
    """What HAProxy should hold for a model, a slot table and the configuration's shapes; each
    part computed on demand, so that an endpoint change in a world of 10,000 Services looks at
    one Service."""

    def __init__(
        self, model: RouteModel, slots: SlotTable, settings: RenderSettings, shapes: Shapes
    ) -> None:
        self.model = model
        self.slots = slots
        self.settings = settings
        self.shapes = shapes
        self._owner: dict[str, str] | None = None

    def servers(self, slot: str) -> tuple[Server, ...]:
        if self._owner is None:
            self._owner = self.slots.owner()
        name = self._owner.get(slot)
        return slot_servers(name, self.model.backend_index) if name is not None else ()

    def sources(self, slot: str) -> tuple[tuple[str, str], ...]:
        """The verdicts of the slot's source map (empty unless its owner has lists)."""
        if self._owner is None:
            self._owner = self.slots.owner()
        return slot_sources(self._owner.get(slot), source_lists(self.model))

    @cached_property
    def routes(self) -> dict[str, str]:
        return map_entries(self.model, self.slots.assigned, self.shapes)

    @cached_property
    def crt_list(self) -> dict[str, tuple[str, ...]]:
        return {entry.cert: entry.filters for entry in crt_entries(self.model)}

    @cached_property
    def certificates(self) -> dict[str, Certificate]:
        listed = self.crt_list
        by_file = {cert_file(c.name): c for c in self.model.certificates}
        return {name: cert for name, cert in by_file.items() if name in listed}

    @cached_property
    def fingerprints(self) -> dict[str, str]:
        return {name: cert.fingerprint for name, cert in self.certificates.items()}

    def pem(self, name: str) -> str:
        return pem_bundle(self.certificates[name])

    def sha1(self, name: str) -> str:
        return _sha1(self.certificates[name].cert_pem)

    @cached_property
    def tuning(self) -> Tuning:
        return tuning_of(self.model.settings)

    def config(self) -> str:
        return render_config(self.model, self.slots, self.settings, self.tuning, self.shapes)


def group_entries(entries: Mapping[str, str]) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    for key, value in entries.items():
        groups.setdefault(_group(key), {})[key] = value
    return groups


def update_entries(
    routes: Mapping[str, str],
    groups: Mapping[str, Mapping[str, str]],
    model: RouteModel,
    assigned: Mapping[str, str],
    diff: ModelDiff,
    shapes: Shapes | None = None,
) -> tuple[dict[str, str], dict[str, dict[str, str]], set[str]]:
    """The routes map after ``diff``, recomputing only the virtual hosts it names (and
    ``default``): the new map, the new entries of each recomputed group, and every key that may
    differ. ``groups`` indexes ``routes`` by group (vhost key, ``""`` for the default, the
    suffix-host flag). ``shapes``: the running configuration's (default: the model's)."""
    if shapes is None:
        shapes = Shapes.of(model)
    changed: dict[str, dict[str, str]] = {}
    for host in _affected_hosts(diff):
        vhost = model.vhost_index.get(host)
        changed[vhost_key(host)] = vhost_entries(vhost, assigned, shapes) if vhost else {}
    suffixes = (
        (SUFFIXES_KEY in routes)
        if not (diff.vhosts_added or diff.vhosts_removed)
        else (any(v.kind is HostKind.SUFFIX for v in model.vhosts))
    )
    if diff.default_backend_changed or suffixes != (SUFFIXES_KEY in routes):
        default = model.default_backend
        changed[""] = {DEFAULT_KEY: assigned[default]} if default is not None else {}
        if suffixes:
            changed[""][SUFFIXES_KEY] = REDIRECT_VALUE
    if not changed:
        return dict(routes), changed, set()
    result = dict(routes)
    keys: set[str] = set()
    for group, entries in changed.items():
        for key in groups.get(group, {}):
            result.pop(key, None)
            keys.add(key)
        result.update(entries)
        keys.update(entries)
    return result, changed, keys


def _affected_hosts(diff: ModelDiff) -> set[str | None]:
    hosts: set[str | None] = {*diff.vhosts_added, *diff.vhosts_removed, *diff.tls_changed}
    for key in (*diff.routes_added, *diff.routes_removed, *diff.routes_changed):
        hosts.add(key[0])
    return hosts


class Applier:
    """Owns what the HAProxy process holds: start, apply, reload, reconcile."""

    def __init__(
        self,
        process: HAProxyProcess,
        settings: RenderSettings,
        options: ApplyOptions,
        fallback: Certificate,
    ) -> None:
        self.process = process
        self.workdir = process.workdir
        self.settings = settings
        self.options = options
        self.fallback = fallback
        self.runtime = Runtime(process.admin())
        self.state: LiveState | None = None
        self.worker_pids: frozenset[int] = frozenset()
        self.reloads = 0
        self._written_pems: dict[str, str] = {}  # file -> fingerprint on disk
        # The fingerprint of the certificate FALLBACK_PEM (the crt-list's first line: no or
        # unknown SNI) holds on disk: the model's default certificate's, "" for the fallback.
        self._default_on_disk: str | None = None
        self._written_routes: Mapping[str, str] | None = None  # the map object last written
        self._written_sources: dict[str, str] = {}  # source map file -> the text on disk
        self._serving: _Desired | None = None  # what the files and HAProxy hold
        self.watch = Stopwatch()  # where an apply's time goes (ApplyResult.timings)

    # ---- files

    def prepare_workdir(self) -> None:
        (self.workdir / "maps").mkdir(parents=True, exist_ok=True)
        (self.workdir / SOURCES_DIR).mkdir(parents=True, exist_ok=True)
        certs = self.workdir / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        os.chmod(certs, 0o700)
        write_atomic(self.workdir / FALLBACK_PEM, pem_bundle(self.fallback), mode=SECRET_MODE)
        self._default_on_disk = ""
        write_atomic(self.workdir / MIRROR_LUA, mirror_lua())

    def _default_certificate(self, model: RouteModel) -> tuple[str, Certificate]:
        """The certificate of the crt-list's first line for ``model`` and its fingerprint: the
        model's default certificate (an HTTPS listener's without hostname), else ("", the
        fallback). HAProxy reads that line at a reload only: a change reloads."""
        cert = model.certificate_index.get(model.default_certificate or "")
        return (cert.fingerprint, cert) if cert is not None else ("", self.fallback)

    def _write(
        self,
        desired: _Desired,
        routes: Mapping[str, str] | None = None,
        config_name: str = CONFIG_FILE,
        *,
        config: bool = True,
        crt_list: bool = True,
    ) -> None:
        """PEMs first, then the map and the crt-list, then the configuration naming them.
        ``routes`` None writes the model's whole map; otherwise the map is written when it is
        not the one last written; ``config``/``crt_list`` False: known to be unchanged."""
        fingerprints = desired.fingerprints
        if crt_list:
            default, cert = self._default_certificate(desired.model)
            if default != self._default_on_disk:
                write_atomic(self.workdir / FALLBACK_PEM, pem_bundle(cert), mode=SECRET_MODE)
                self._default_on_disk = default
            for name, fingerprint in fingerprints.items():
                if self._written_pems.get(name) != fingerprint:
                    write_atomic(self.workdir / name, desired.pem(name), mode=SECRET_MODE)
                    self._written_pems[name] = fingerprint
            for name in [n for n in self._written_pems if n not in fingerprints]:
                (self.workdir / name).unlink(missing_ok=True)
                del self._written_pems[name]
            text = render_crt_list(CrtEntry(c, f) for c, f in sorted(desired.crt_list.items()))
            write_atomic(self.workdir / CRT_LIST, text)
        entries = desired.routes if routes is None else routes
        if entries is not self._written_routes:
            write_atomic(self.workdir / ROUTES_MAP, render_map(entries))
            self._written_routes = entries
        if config or config_name != CONFIG_FILE:
            # Every slot's source map, before the configuration naming it.
            for slot in desired.slots.slots:
                name = source_file(slot)
                text = source_text(desired.sources(slot))
                if self._written_sources.get(name) != text:
                    write_atomic(self.workdir / name, text)
                    self._written_sources[name] = text
            # Owner only: userlists hold password hashes.
            write_atomic(self.workdir / config_name, desired.config(), mode=SECRET_MODE)

    def _restore(self, desired: _Desired | None) -> None:
        """After a refused reload: the files of what HAProxy still serves."""
        if desired is not None:
            self._written_routes = None
            self._write(desired, self._state().routes)

    def _fresh_state(self, desired: _Desired) -> LiveState:
        return LiveState(
            slots=desired.slots,
            routes=desired.routes,
            groups=group_entries(desired.routes),
            crt_list=dict(desired.crt_list),
            certs=dict(desired.fingerprints),
            tuning=desired.tuning,
            shapes=desired.shapes,
            loaded_connect=_loaded_connect(desired.slots),
            sources={s: v for s in desired.slots.slots if (v := desired.sources(s))},
        )

    # ---- start / restart

    def start(self, model: RouteModel, previous_slots: SlotTable | None = None) -> None:
        """Write everything for ``model``, start HAProxy on it and read it back."""
        slots = SlotTable.plan(wanted_names(model), self.options.spare_backends, previous_slots)
        shapes = Shapes.of(model)
        if self.state is not None:
            shapes = self.state.shapes.union(shapes)  # a restart: no reload for them again
        desired = _Desired(model, slots, self.settings, shapes)
        self.prepare_workdir()
        self._written_pems.clear()
        self._written_routes = None
        self._written_sources.clear()
        self._write(desired)
        keep = {*desired.fingerprints, FALLBACK_PEM}
        for pem in (self.workdir / "certs").glob("*.pem"):
            if f"certs/{pem.name}" not in keep:  # left by an earlier run
                pem.unlink(missing_ok=True)
        try:
            self.process.check()
        except ConfigInvalid as exc:
            raise ApplyError(f"haproxy -c refused the configuration: {exc}") from exc
        self.worker_pids = self.process.serve()
        self.state = self._fresh_state(desired)
        self._serving = desired
        self._update_gauge()
        self.reconcile(model, count_drift=False)

    # ---- apply

    def reload_reasons(
        self, model: RouteModel, diff: ModelDiff | None = None
    ) -> tuple[ReloadReason, ...]:
        """Why ``model`` cannot be applied at run time (empty: it can). ``diff``: the change from
        the model HAProxy serves; only the hosts it names can need more of the configuration."""
        state = self._state()
        reasons: list[ReloadReason] = []
        if tuning_of(model.settings) != state.tuning:
            reasons.append(RELOAD_SETTINGS)
        names = wanted_names(model)
        new = [n for n in names if n not in state.slots.assigned]
        reusable = _reusable_splits(new, state.slots.assigned, set(names))
        if len(new) - len(reusable) > len(state.slots.free):
            log.info(
                "haproxy: %d new Services and splits, %d spare slots: reload",
                len(new),
                len(state.slots.free),
            )
            reasons.append(RELOAD_SPARE_POOL)
        if _connect_mismatch(new, reusable, state):
            reasons.append(RELOAD_CONNECT_TIMEOUT)
        if diff is None or state.dirty:
            needed = Shapes.of(model)
        else:
            index = model.vhost_index
            hosts = (index[h] for h in _affected_hosts(diff) if h in index)
            needed = Shapes.of(RouteModel(vhosts=tuple(hosts)))
        if not state.shapes.covers(needed):
            missing = _missing_shapes(state.shapes, needed)
            log.info("haproxy: the configuration does not evaluate %s: reload", missing)
            if state.shapes.names_cover(needed):
                reasons.append(RELOAD_SPARE_POOL)
            else:
                reasons.append(RELOAD_NEW_NAME)
        if self._default_certificate(model)[0] != self._default_on_disk:
            reasons.append(ReloadReason.CERTIFICATES_CHANGED)
        for cert in model.certificates:
            name = cert_file(cert.name)
            if state.certs.get(name) != cert.fingerprint and not _cert_payload_ok(
                pem_bundle(cert), name
            ):
                reasons.append(RELOAD_CERT_SIZE)
                break
        return tuple(reasons)

    def apply(self, model: RouteModel, diff: ModelDiff | None = None) -> ApplyResult:
        """Serve ``model``; ``diff`` (from the model HAProxy serves) limits what is looked at,
        None looks at everything."""
        with self.watch.part("plan"):
            reasons = self.reload_reasons(model, diff)
        if reasons:
            return self.reload(model, reasons)
        sent = self.runtime.sent
        try:
            self._runtime_apply(model, diff)
        except (CommandRejected, UnsafeArgument, DriftError) as exc:
            log.warning("haproxy: %s; reloading instead", exc)
            return self.reload(model, (RELOAD_REFUSED,))
        except (RuntimeApiError, OSError):
            self._state().dirty = True  # commands may or may not have run: re-read everything
            raise
        return ApplyResult(reloaded=False, runtime_changes=self.runtime.sent - sent)

    def _runtime_apply(self, model: RouteModel, diff: ModelDiff | None) -> None:
        state = self._state()
        full = state.dirty or diff is None
        assigned = dict(state.slots.assigned)
        free = list(state.slots.free)
        names = wanted_names(model)
        wanted = set(names)
        added = [name for name in names if name not in assigned]
        # A split whose weights changed keeps its slot (the same backends): its servers get the
        # new weights (set server weight), and the rows' entries, naming the slot, stay as they are.
        for new, old in _reusable_splits(added, assigned, wanted).items():
            assigned[new] = assigned.pop(old)
        for name in added:
            if name not in assigned:
                assigned[name] = free.pop(0)
        removed = sorted(name for name in assigned if name not in wanted)
        freed = [assigned.pop(name) for name in removed]
        # Freed slots join the pool only after this apply: their old routes must be gone first.
        slots = SlotTable(assigned=assigned, free=tuple(sorted([*free, *freed], key=slot_number)))
        desired = _Desired(model, slots, self.settings, state.shapes)

        certs = full or diff is None or bool(diff.tls_changed) or _certs_changed(diff)
        watch = self.watch
        if certs:
            with watch.part("runtime certs"):
                self._sync_certs(desired, read_fingerprints=full)

        if full or diff is None:
            touched = sorted(assigned.values(), key=slot_number)
        else:
            changed = {*diff.endpoints_changed, *added}
            # A split's servers are its backends' endpoints, weighted by their numbers.
            endpoints = set(diff.endpoints_changed)
            if endpoints:
                changed |= {
                    n
                    for n in assigned
                    if (base := slot_base(n)).startswith(SPLIT_PREFIX)
                    and any(b in endpoints for b, _w in split_members(base))
                }
                changed |= {n for n in assigned if slot_base(n) in endpoints}
            touched = sorted({assigned[n] for n in changed if n in assigned}, key=slot_number)
        with watch.part("runtime servers"):
            self._sync_servers(touched, desired)
        with watch.part("runtime sources"):
            # A slot's source lists before a route points at it.
            self._sync_sources(touched, desired, read=full)

        with watch.part("runtime routes"):
            if full or diff is None:
                routes: dict[str, str] = dict(desired.routes)
                self._sync_routes(routes, read=True)
                state.groups = group_entries(routes)
            else:
                routes = self._incremental_routes(model, assigned, diff)
        empty = set(freed) | (set(slots.free) if full else set())
        with watch.part("runtime servers"):
            self._sync_servers(sorted(empty, key=slot_number), desired)
        with watch.part("runtime sources"):
            # A freed slot refuses nobody again, now that no route points at it.
            self._sync_sources(sorted(empty, key=slot_number), desired, read=full)
        with watch.part("runtime drain"):
            self._delete_drained()

        state.slots = slots
        state.dirty = False
        config = full or bool(touched) or bool(freed)
        with watch.part("write"):
            self._write(desired, routes, config=config, crt_list=certs)
        self._serving = desired
        self._update_gauge()

    def _incremental_routes(
        self, model: RouteModel, assigned: Mapping[str, str], diff: ModelDiff
    ) -> dict[str, str]:
        state = self._state()
        routes, changed, keys = update_entries(
            state.routes, state.groups, model, assigned, diff, state.shapes
        )
        if not changed:
            return state.routes
        self._sync_routes(routes, read=False, keys=keys)
        for group, entries in changed.items():
            if entries:
                state.groups[group] = entries
            else:
                state.groups.pop(group, None)
        return routes

    # ---- reload

    def reload(self, model: RouteModel, reasons: Sequence[ReloadReason]) -> ApplyResult:
        state = self._state()
        spare = self.options.spare_backends
        names = wanted_names(model)
        if RELOAD_SPARE_POOL in reasons:
            spare = max(spare, len(names))  # grow geometrically: few reloads
        slots = SlotTable.plan(names, spare, state.slots)
        shapes = state.shapes.union(Shapes.of(model))
        desired = _Desired(model, slots, self.settings, shapes)
        before = self._serving
        candidate = self.workdir / f"{CONFIG_FILE}.new"
        watch = self.watch
        with watch.part("render+write"):
            self._write(desired, config_name=candidate.name)
        try:
            with watch.part("validate"):
                self.process.check(candidate)
        except ConfigInvalid as exc:
            candidate.unlink(missing_ok=True)
            self._restore(before)
            state.dirty = True  # a refused runtime change may have been half made
            raise ApplyError(f"haproxy -c refused the new configuration: {exc}") from exc
        os.replace(candidate, self.workdir / CONFIG_FILE)
        try:
            with watch.part("reload"):
                pids = self.process.master().reload(timeout=20.0)
        except ReloadFailed as exc:
            self._restore(before)
            state.dirty = True
            raise ApplyError(f"haproxy reload failed: {exc}: {self.process.log_tail()}") from exc
        self.worker_pids = frozenset(pids)
        self.reloads += 1
        for reason in reasons:
            RELOADS.labels(reason).inc()
        log.info("haproxy: reloaded (%s); worker(s) %s", "; ".join(reasons), sorted(pids))
        self.state = self._fresh_state(desired)
        self._serving = desired
        self._update_gauge()
        with watch.part("read-back"):
            self.reconcile(model, count_drift=True)
        return ApplyResult(reloaded=True, reasons=tuple(reasons))

    # ---- read back and repair

    def reconcile(self, model: RouteModel, *, count_drift: bool = True) -> int:
        """Compare everything HAProxy holds with ``model`` and repair it; returns the number of
        commands the repair needed (0: no drift)."""
        state = self._state()
        if not state.shapes.covers(Shapes.of(model)):
            raise DriftError("the configuration does not evaluate every row of the model")
        desired = _Desired(model, state.slots, self.settings, state.shapes)
        repaired = self._sync_certs(desired, read_fingerprints=True, count=count_drift)
        repaired += self._sync_servers(None, desired, count=count_drift)
        repaired += self._sync_sources(desired.slots.slots, desired, read=True, count=count_drift)
        routes = dict(desired.routes)
        repaired += self._sync_routes(routes, read=True, count=count_drift)
        state.groups = group_entries(routes)
        self._delete_drained()
        state.dirty = False
        if count_drift and repaired:
            log.warning("haproxy: repaired %d differences with the model", repaired)
        return repaired

    def tick(self) -> None:
        """Delete servers that finished draining (called about once a second)."""
        if self.state is not None and self.state.draining:
            self._delete_drained()

    # ---- servers

    def _read_servers(self, slots: Sequence[str] | None) -> dict[str, list[ServerState]]:
        if slots is None:
            reply = self.runtime.one(Command.of("show", "servers", "state"))
            found: dict[str, list[ServerState]] = {}
            for st in parse_servers_state(reply.text):
                found.setdefault(st.backend, []).append(st)
            return found
        replies = self.runtime.batch([Command.of("show", "servers", "state", s) for s in slots])
        return {slot: parse_servers_state(r.text) for slot, r in zip(slots, replies, strict=True)}

    def _sync_servers(
        self, slots: Sequence[str] | None, desired: _Desired, *, count: bool = False
    ) -> int:
        """Read ``show servers state``, plan, run; until a read finds nothing to do (the last
        read is the verification). ``slots`` None: every slot, read in one command."""
        state = self._state()
        targets = list(desired.slots.slots) if slots is None else list(slots)
        if not targets:
            return 0
        sent = 0
        for attempt in range(3):
            actual = self._read_servers(None if slots is None else targets)
            commands: list[Command] = []
            now = time.monotonic()
            for slot in targets:
                wanted = desired.servers(slot)
                cmds, retire = plan_servers(slot, actual.get(slot, []), wanted)
                commands += cmds
                for name in retire:
                    state.draining.setdefault((slot, name), now + self.options.drain_timeout)
                for server in wanted:
                    state.draining.pop((slot, server.name), None)
            if not commands:
                return sent
            if attempt == 2:
                raise DriftError(f"servers still differ from the model: {commands[0]} ...")
            if count or attempt:
                DRIFT_REPAIRED.labels("servers").inc(len(commands))
            for reply in self.runtime.batch(commands, check=False):
                if not reply.ok:  # the next read shows what HAProxy holds; plan again from it
                    log.warning("haproxy: %s: %s", reply.command, reply.text.strip())
            sent += len(commands)
        return sent  # pragma: no cover - the loop returns or raises

    def _delete_drained(self) -> None:
        """``del server`` for retired servers. A server refused because of connections: if
        none is in use, the connections left are idle ones that became idle after it entered
        maintenance (entering maintenance closes idle connections, not later ones): pass it
        through ``drain`` back to ``maint`` to close them (no traffic either way, there is no
        persistence), then delete. In use past the drain timeout: ``shutdown sessions``."""
        state = self._state()
        if not state.draining:
            return
        pending = sorted(state.draining)
        refused = self._try_delete(pending)
        if not refused:
            return
        slots = sorted({slot for slot, _name in refused})
        replies = self.runtime.batch([Command.of("show", "servers", "conn", s) for s in slots])
        in_use: dict[tuple[str, str], int] = {}
        for slot, reply in zip(slots, replies, strict=True):
            for name, used in parse_servers_conn(reply.text).items():
                in_use[(slot, name)] = used
        now = time.monotonic()
        retry: list[tuple[str, str]] = []
        commands: list[Command] = []
        for key in refused:
            ref = f"{key[0]}/{key[1]}"
            overdue = now >= state.draining[key]
            if in_use.get(key, 0) and not overdue:
                continue
            if overdue:
                log.info("haproxy: %s still busy after the drain timeout; cutting it", ref)
                commands.append(Command.of("shutdown", "sessions", "server", ref))
            commands.append(Command.of("set", "server", ref, "state", "drain"))
            commands.append(Command.of("set", "server", ref, "state", "maint"))
            retry.append(key)
        if commands:
            self.runtime.batch(commands, check=False)
            self._try_delete(retry)

    def _try_delete(self, keys: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """``del server`` each one; returns those refused because of their connections."""
        state = self._state()
        commands = [Command.of("del", "server", f"{slot}/{name}") for slot, name in keys]
        refused: list[tuple[str, str]] = []
        for key, reply in zip(keys, self.runtime.batch(commands, check=False), strict=True):
            if reply.ok or reply.error is NotFound:
                state.draining.pop(key, None)
            elif reply.error is Conflict:
                refused.append(key)
            else:
                log.warning("haproxy: %s: %s", reply.command, reply.text.strip())
        return refused

    # ---- source lists

    def _sync_sources(
        self, slots: Sequence[str], desired: _Desired, *, read: bool, count: bool = False
    ) -> int:
        """Give each slot's source map the verdicts of its owner's lists: compared with what we
        believe it holds (``show map`` when ``read``), each differing map swapped at once
        (``prepare map``, ``add map @v`` payloads, ``commit map @v``)."""
        state = self._state()
        if not slots:
            return 0
        if read:
            replies = self.runtime.batch(
                [Command.of("show", "map", source_file(slot)) for slot in slots]
            )
            actual = {
                slot: tuple(parse_map_entries(reply.text))
                for slot, reply in zip(slots, replies, strict=True)
            }
        else:
            actual = {slot: state.sources.get(slot, ()) for slot in slots}
        changed = [s for s in slots if sorted(actual[s]) != sorted(desired.sources(s))]
        if not changed:
            return 0
        if count:
            DRIFT_REPAIRED.labels("sources").inc(len(changed))
        replies = self.runtime.batch(
            [Command.of("prepare", "map", source_file(s)) for s in changed]
        )
        commands: list[Command] = []
        for slot, reply in zip(changed, replies, strict=True):
            version = _created_version(reply)
            name = source_file(slot)
            lines = (map_payload_line(n, v) for n, v in desired.sources(slot))
            commands += [
                Command(("add", "map", version, name), chunk)
                for chunk in chunk_payload_lines(lines)
            ]
            commands.append(Command.of("commit", "map", version, name))
        self.runtime.batch(commands, check=True)
        for slot in changed:
            verdicts = desired.sources(slot)
            if verdicts:
                state.sources[slot] = verdicts
            else:
                state.sources.pop(slot, None)
        return len(changed) + len(commands)

    # ---- routes

    def _read_routes(self) -> tuple[dict[str, str], bool]:
        entries = parse_map_entries(self.runtime.one(Command.of("show", "map", ROUTES_MAP)).text)
        routes = dict(entries)
        return routes, len(routes) == len(entries)

    def _sync_routes(
        self,
        desired: dict[str, str],
        *,
        read: bool,
        count: bool = False,
        keys: Iterable[str] | None = None,
    ) -> int:
        """Plan from what we believe HAProxy holds (or from ``show map`` when ``read``), run,
        read back; a difference left is repaired by swapping in the whole map."""
        state = self._state()
        if read:
            current, unique = self._read_routes()
            plan = plan_routes(current, desired) if unique else RoutePlan(full=True, changed=1)
            if count and plan.changed:
                DRIFT_REPAIRED.labels("routes").inc(plan.changed)
            if not plan.changed:
                state.routes = desired
                return 0
        else:
            plan = plan_routes(state.routes, desired, keys)
            if not plan.changed:
                state.routes = desired
                return 0
        sent = self._run_route_plan(plan, desired)
        if not plan.full and keys is not None and self._keys_hold(keys, desired):
            state.routes = desired
            return sent
        actual, unique = self._read_routes()
        if not unique or actual != desired:
            DRIFT_REPAIRED.labels("routes").inc()
            sent += self._run_route_plan(RoutePlan(full=True, changed=1), desired)
            actual, unique = self._read_routes()
            if not unique or actual != desired:
                raise DriftError("the routes map still differs from the model after a repair")
        state.routes = desired
        return sent

    def _keys_hold(self, keys: Iterable[str], desired: Mapping[str, str]) -> bool:
        """Read back only ``keys`` (``get map``, the exact-match line): O(change), not O(map)."""
        ordered = sorted(keys)
        if not all(_cli_safe(k, None) for k in ordered):
            return False  # a key no CLI word carries (';'): read the whole map instead
        replies = self.runtime.batch([Command.of("get", "map", ROUTES_MAP, k) for k in ordered])
        for key, reply in zip(ordered, replies, strict=True):
            line = next((x for x in reply.lines if x.startswith("type=str,")), "")
            want = desired.get(key)
            if want is None:
                if "found=no" not in line:
                    return False
            elif f'key="{key}", value="{want}"' not in line:
                return False
        return True

    def _run_route_plan(self, plan: RoutePlan, desired: Mapping[str, str]) -> int:
        if plan.full:
            client = self.runtime.client
            version = client.prepare_map(ROUTES_MAP)
            chunks = client.add_map_payload(ROUTES_MAP, sorted(desired.items()), version)
            client.commit_map(ROUTES_MAP, version)
            RUNTIME_COMMANDS.labels("prepare map").inc()
            RUNTIME_COMMANDS.labels("add map").inc(chunks)
            RUNTIME_COMMANDS.labels("commit map").inc()
            self.runtime.sent += chunks + 2
            return chunks + 2
        self.runtime.batch(plan.commands, check=True)
        return len(plan.commands)

    # ---- certificates

    def _read_certs(self) -> tuple[set[str], list[CrtLine]]:
        names_reply, list_reply = self.runtime.batch(
            [
                Command.of("show", "ssl", "cert"),
                Command.of("show", "ssl", "crt-list", "-n", CRT_LIST),
            ]
        )
        names: set[str] = set()
        section = ""
        for line in names_reply.lines:
            if line.startswith("#"):
                section = line.lstrip("#").strip()
            elif line and section == "filename" and not line.startswith("*"):
                names.add(line)
        return names, parse_crt_list(list_reply.text)

    def _sync_certs(
        self, desired: _Desired, *, read_fingerprints: bool, count: bool = False
    ) -> int:
        state = self._state()
        wanted_lines = desired.crt_list
        fingerprints = desired.fingerprints
        if not read_fingerprints and state.crt_list == wanted_lines and state.certs == fingerprints:
            return 0
        names, lines = self._read_certs()
        stale: set[str] = set()
        if read_fingerprints:
            check = sorted(n for n in names if n in fingerprints)
            replies = self.runtime.batch([Command.of("show", "ssl", "cert", n) for n in check])
            for name, reply in zip(check, replies, strict=True):
                if f"SHA1 FingerPrint: {desired.sha1(name)}" not in reply.text:
                    stale.add(name)
        else:
            stale = {
                n for n in names if n in fingerprints and state.certs.get(n) != fingerprints[n]
            }

        store: list[Command] = []
        for name in sorted(fingerprints):
            if name not in names:
                store.append(Command.of("new", "ssl", "cert", name))
            if name not in names or name in stale:
                store.append(Command(("set", "ssl", "cert", name), desired.pem(name)))
                store.append(Command.of("commit", "ssl", "cert", name))
        adds: list[Command] = []
        dels: list[Command] = []
        kept: set[str] = set()
        for line in lines:
            if _is_default(line):
                continue
            if wanted_lines.get(line.cert) == line.filters and line.cert not in kept:
                kept.add(line.cert)
                continue
            ref = f"{line.cert}:{line.number}"
            dels.append(Command.of("del", "ssl", "crt-list", CRT_LIST, ref))
        for cert, filters in sorted(wanted_lines.items()):
            if cert not in kept:
                line_text = " ".join((cert, *filters))
                adds.append(Command(("add", "ssl", "crt-list", CRT_LIST), line_text))
        drop = [
            Command.of("del", "ssl", "cert", name)
            for name in sorted(names)
            if name not in fingerprints and name != FALLBACK_PEM
        ]
        commands = [*store, *adds, *dels, *drop]
        if not commands:
            state.certs = dict(fingerprints)
            state.crt_list = dict(wanted_lines)
            return 0
        if count:
            DRIFT_REPAIRED.labels("certificates").inc(len(commands))
        try:
            self.runtime.batch(store, check=True)
        except CommandRejected:
            with contextlib.suppress(CommandRejected, ProtocolError):
                aborts = [Command.of("abort", "ssl", "cert", n) for n in sorted(fingerprints)]
                self.runtime.batch(aborts, check=False)
            raise
        # New lines first, then the old ones: a handshake always finds a line for its host.
        self.runtime.batch([*adds, *dels], check=True)
        self.runtime.batch(drop, check=True)
        names, lines = self._read_certs()
        got = sorted((line.cert, line.filters) for line in lines if not _is_default(line))
        if names != {*fingerprints, FALLBACK_PEM} or got != sorted(wanted_lines.items()):
            raise DriftError(f"certificates: HAProxy holds {sorted(names)} / {got}")
        state.certs = dict(fingerprints)
        state.crt_list = dict(wanted_lines)
        return len(commands)

    # ---- misc

    def _state(self) -> LiveState:
        if self.state is None:
            raise ApplyError("haproxy is not running")
        return self.state

    def _update_gauge(self) -> None:
        if self.state is not None:
            SPARE_SLOTS.set(len(self.state.slots.free))


def _created_version(reply: Reply) -> str:
    """``@<n>`` from a ``prepare map`` reply (``New version created: n``)."""
    text = reply.raise_for_error().text
    prefix = "New version created:"
    if not text.startswith(prefix):
        raise CommandRejected(reply.command, text)
    return "@" + str(int(text[len(prefix) :].strip()))


def _loaded_connect(slots: SlotTable) -> dict[str, int]:
    """slot -> the connect timeout its section has in a configuration rendered with ``slots``."""
    found: dict[str, int] = {}
    for name, slot in slots.assigned.items():
        ms = connect_ms(name)
        if ms is not None:
            found[slot] = ms
    return found


def _connect_mismatch(new: Sequence[str], reusable: Mapping[str, str], state: LiveState) -> bool:
    """True when the owners ``new`` cannot take slots at run time because of connect timeouts:
    an owner with one needs a section rendered with it (a reload); one without must not take
    a spare slot whose section was loaded with one (the first spares go first)."""
    taking = [n for n in new if n not in reusable]
    if any(connect_ms(n) is not None for n in taking):
        return True
    spares = state.slots.free[: len(taking)]
    return any(slot in state.loaded_connect for slot in spares)


def _reusable_splits(
    added: Iterable[str], assigned: Mapping[str, str], wanted: set[str]
) -> dict[str, str]:
    """New split -> a split leaving the model with the same backends (other weights)."""
    leaving: dict[tuple[bool, frozenset[str]], list[str]] = {}
    for name in sorted(assigned):
        if name.startswith(SPLIT_PREFIX) and name not in wanted:
            members = (is_hop(name), frozenset(b for b, _w in split_members(name)))
            leaving.setdefault(members, []).append(name)
    reuse: dict[str, str] = {}
    for name in added:
        if name.startswith(SPLIT_PREFIX):
            # A split through member sockets (rows.hop_members) keeps such a slot only: its
            # servers' addresses are sockets, which `set server addr` cannot set.
            key = (is_hop(name), frozenset(b for b, _w in split_members(name)))
            candidates = leaving.get(key)
            if candidates:
                reuse[name] = candidates.pop(0)
    return reuse


def _missing_shapes(have: Shapes, needed: Shapes) -> str:
    parts = []
    for what in ("signatures", "request_filters", "response_filters", "affinity_cookies"):
        extra = sorted(set(getattr(needed, what)) - set(getattr(have, what)))
        if extra:
            parts.append(f"{what} {extra}")
    if needed.segments > have.segments:
        parts.append(f"{needed.segments} prefix segments")
    if needed.suffix_labels > have.suffix_labels:
        parts.append(f"suffix hosts of {needed.suffix_labels} labels")
    users = {a for a, _u in needed.auths} - {a for a, _u in have.auths}
    if users:
        parts.append(f"{len(users)} new basic authentication user list(s)")
    lengths = sorted(set(needed.source_lengths) - set(have.source_lengths))
    if lengths:
        parts.append("source range lengths " + ", ".join(f"IPv{f} /{n}" for f, n in lengths))
    if needed.members > have.members:
        parts.append(f"splits of {needed.members} members with their own filters")
    return "; ".join(parts)


def _certs_changed(diff: ModelDiff) -> bool:
    return bool(diff.certificates_added or diff.certificates_removed or diff.certificates_changed)

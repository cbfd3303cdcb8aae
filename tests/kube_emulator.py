"""kmock's Kubernetes emulator, extended with the API server semantics the controller relies on.

kmock serves the Kubernetes API over real HTTP (aiohttp) but keeps placeholder resourceVersions
and streams every object to every watch. ``KubeAPI`` keeps its server, request parsing and
discovery and replaces object handling with the real rules:

* one cluster-wide resourceVersion counter, stamped on every write and on list responses;
* watches from a resourceVersion replay the changes after it; from ""/"0" they start with
  synthetic ADDED events; ``allowWatchBookmarks`` gets BOOKMARK events; ``timeoutSeconds`` ends
  the stream; a resourceVersion older than the last compaction is answered with an ERROR event
  of code 410 (Expired), as the API server does;
* list with fieldSelector/labelSelector, limit and continue tokens (410 once compacted);
* create (409 AlreadyExists), replace with optimistic concurrency (409 Conflict on a stale
  resourceVersion), JSON merge patch, the ``status`` subresource, delete;
* outages: the HTTP server is stopped (connections refused) and restarted on the same port;
* the Gateway API resources as the vendored CRDs (deploy/gateway-api) define them: scope,
  served versions, status subresource, and the schema's defaults applied on every write; an
  API group can be uninstalled (404 for every request to it, its objects gone) and installed
  again, as deleting and re-applying CRDs does.

``KubeEmulator`` runs it in a thread with its own event loop for synchronous tests and records
every call (verb, resource, namespace, name) made by the controller for the RBAC test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import http.client
import json
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import yaml
from kmock._internal import parsing, rendering
from kubernetes import client as kclient

from polyingress.core import (
    ApplyError,
    ApplyResult,
    BuildOptions,
    HealthReport,
    ObjectStore,
    PathType,
    RouteModel,
    RunSettings,
    hookimpl,
)
from polyingress.core.runtime.controller import Controller
from polyingress.core.runtime.plugins import plugin_manager
from polyingress.core.sources.kubernetes.source import KubeOptions, KubeRuntime, api_client
from polyingress.core.tls import self_signed

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
GATEWAY_INSTALL = DEPLOY / "gateway-api" / "standard-install.yaml"
GATEWAY_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant")


def _gateway_crds() -> dict[str, dict[str, Any]]:
    """The vendored CRDs of the kinds polyingress reads, by plural."""
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = {}
    for doc in yaml.load_all(GATEWAY_INSTALL.read_text(), Loader=loader):
        crd = doc and doc["kind"] == "CustomResourceDefinition"
        if crd and doc["spec"]["names"]["kind"] in GATEWAY_KINDS:
            out[doc["spec"]["names"]["plural"]] = doc
    return out


GATEWAY_CRDS = _gateway_crds()


def _crd_resource(crd: Mapping[str, Any]) -> tuple[str, str, str, bool, bool]:
    spec = crd["spec"]
    storage = next(v for v in spec["versions"] if v["storage"])
    served = [v for v in spec["versions"] if v["served"]]
    return (
        spec["group"],
        "v1" if any(v["name"] == "v1" for v in served) else storage["name"],
        spec["names"]["kind"],
        spec["scope"] == "Namespaced",
        "status" in (storage.get("subresources") or {}),
    )


# plural -> (group, version, kind, namespaced, has status subresource)
RESOURCES: dict[str, tuple[str, str, str, bool, bool]] = {
    "ingresses": ("networking.k8s.io", "v1", "Ingress", True, True),
    "ingressclasses": ("networking.k8s.io", "v1", "IngressClass", False, False),
    "services": ("", "v1", "Service", True, True),
    "endpointslices": ("discovery.k8s.io", "v1", "EndpointSlice", True, False),
    "secrets": ("", "v1", "Secret", True, False),
    "configmaps": ("", "v1", "ConfigMap", True, False),
    "nodes": ("", "v1", "Node", False, True),
    "events": ("events.k8s.io", "v1", "Event", True, False),
    "leases": ("coordination.k8s.io", "v1", "Lease", True, False),
    "namespaces": ("", "v1", "Namespace", False, True),
    **{plural: _crd_resource(crd) for plural, crd in GATEWAY_CRDS.items()},
}
# plural -> the versions served (a request for another one is 404, as for an unknown path)
SERVED: dict[str, frozenset[str]] = {
    plural: frozenset({spec[1]}) for plural, spec in RESOURCES.items()
} | {
    plural: frozenset(v["name"] for v in crd["spec"]["versions"] if v["served"])
    for plural, crd in GATEWAY_CRDS.items()
}
# plural -> the openAPIV3Schema whose defaults are applied on write (the served versions of
# these CRDs default alike)
SCHEMAS: dict[str, dict[str, Any]] = {
    plural: next(v for v in crd["spec"]["versions"] if v["storage"])["schema"]["openAPIV3Schema"]
    for plural, crd in GATEWAY_CRDS.items()
}


def apply_defaults(obj: Any, schema: Mapping[str, Any]) -> Any:
    """Structural-schema defaulting as the API server does it: a missing property with a
    ``default`` gets it (defaulted in turn), through objects, arrays and maps."""
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                obj[name] = apply_defaults(obj[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for name in [n for n in obj if n not in props]:
                obj[name] = apply_defaults(obj[name], extra)
    elif isinstance(obj, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(item, schema["items"]) for item in obj]
    return obj


KIND_TO_PLURAL = {spec[2]: plural for plural, spec in RESOURCES.items()}
CONTROLLER_AGENT = "polyingress/"
ALL_CALLS: list[Call] = []  # every call the controller made in this test session


@dataclass(frozen=True, slots=True, order=True)
class Call:
    """One API request: ``verb`` as RBAC names it, ``resource`` with ``/subresource``."""

    verb: str
    group: str
    resource: str
    namespace: str
    name: str
    user_agent: str
    version: str = ""  # the API version requested (RBAC does not look at it)


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _field(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, Mapping) else None
    return "" if cur is None else str(cur)


def _selector_matches(obj: Mapping[str, Any], fields: str, labels: str) -> bool:
    for term in filter(None, fields.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if _field(obj, key) == value:
                return False
        else:
            key, value = term.replace("==", "=").split("=", 1)
            if _field(obj, key) != value:
                return False
    have = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, labels.split(",")):
        if "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if have.get(key) != value:
                return False
        elif term not in have:
            return False
    return True


_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    """kmock 0.8 fails on the collection of Namespaces itself (``/api/v1/namespaces``, read
    as a namespace with no name); it is the plural ``namespaces`` of the core group."""
    if path.rstrip("/") == "/api/v1/namespaces":
        return parsing.ParsedPath(group="", version="v1", plural="namespaces")
    return _kmock_parse_path(path)


parsing.parse_path = _parse_path


class KubeAPI(kmock.KubernetesEmulator):
    """The stateful part; runs in the emulator's event loop only."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.state: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.rv = 0
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, plural, type, object)
        self.compacted_rv = 0
        self.expiry = 0  # bumped to end every open watch with 410
        self.closing = 0  # bumped to end every open watch without a word (outage)
        self.down = False  # shutting down: answer 503 until the listener is closed
        self.bookmark_interval = 0.2
        self.calls: list[Call] = []
        self.open_watches = 0
        # Set (and replaced by a new one) on every change: the open watches wait on it. An
        # Event, not a Condition: waiting needs no lock, so a watch cancelled at shutdown never
        # waits to re-acquire one (Python 3.11's Condition.wait could then hang the shutdown).
        self.changed: asyncio.Event | None = None
        self.faults: list[Callable[[Call], ApiError | None]] = []
        self.absent_groups: set[str] = set()  # API groups not installed: every request 404
        self.served = dict(SERVED)  # plural -> versions served (a test may narrow them)

    # -- recording -------------------------------------------------------------------------

    def _record(self, request: rendering.Request) -> Call | None:
        if request.resource is None or request.resource.plural not in RESOURCES:
            return None
        method = str(request.method.value).upper()
        if method == "GET":
            if request.params.get("watch") in ("true", "1"):
                verb = "watch"
            else:
                verb = "get" if request.name else "list"
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                method, method.lower()
            )
        plural = request.resource.plural
        resource = f"{plural}/{request.subresource}" if request.subresource else plural
        name = request.name or ""
        if verb in ("list", "watch") and not name:
            # RBAC authorizes a list/watch by name through the field selector metadata.name.
            for term in request.params.get("fieldSelector", "").split(","):
                if term.startswith("metadata.name="):
                    name = term.split("=", 1)[1]
        call = Call(
            verb=verb,
            group=RESOURCES[plural][0],
            resource=resource,
            namespace=request.namespace or "",
            name=name,
            user_agent=request.headers.get("User-Agent", ""),
            version=request.resource.version or "",
        )
        self.calls.append(call)
        if call.user_agent.startswith(CONTROLLER_AGENT):
            ALL_CALLS.append(call)
        return call

    # -- state changes (also used directly by tests) -----------------------------------------

    def _changed(self) -> asyncio.Event:
        if self.changed is None:
            self.changed = asyncio.Event()
        return self.changed

    def _notify(self) -> None:
        event = self._changed()
        self.changed = asyncio.Event()
        event.set()

    async def write(self, plural: str, obj: dict[str, Any], *, notify: bool = True) -> None:
        group, version, kind, namespaced, _st = RESOURCES[plural]
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "default") if namespaced else ""
        if namespaced:
            meta["namespace"] = ns
        key = (plural, ns, meta["name"])
        old = self.state.get(key)
        self.rv += 1
        if plural in SCHEMAS:
            apply_defaults(obj, SCHEMAS[plural])
        obj["apiVersion"] = f"{group}/{version}" if group else version
        obj["kind"] = kind
        meta["resourceVersion"] = str(self.rv)
        if old is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta.setdefault("generation", 1)
        else:
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            gen = old["metadata"].get("generation", 1)
            changed_spec = {k: v for k, v in old.items() if k not in ("metadata", "status")} != {
                k: v for k, v in obj.items() if k not in ("metadata", "status")
            }
            meta["generation"] = gen + 1 if changed_spec else gen
        self.state[key] = obj
        if notify:
            self.log.append((self.rv, plural, "ADDED" if old is None else "MODIFIED", obj))
        self._notify()

    async def remove(self, plural: str, ns: str, name: str, *, notify: bool = True) -> None:
        obj = self.state.pop((plural, ns, name))
        self.rv += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        if notify:
            self.log.append((self.rv, plural, "DELETED", gone))
        self._notify()

    async def poke(self) -> None:
        self._notify()

    # -- HTTP ---------------------------------------------------------------------------------

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        call = self._record(request)
        if call is None:
            return await super()._handle(request)
        assert request.resource is not None
        if call.group in self.absent_groups or request.resource.version not in self.served.get(
            request.resource.plural or "", frozenset()
        ):
            # What the API server answers for a group/version/resource it does not serve.
            return aiohttp.web.Response(status=404, text="404 page not found\n")
        try:
            if self.down:
                raise ApiError(503, "ServiceUnavailable", "the API server is shutting down")
            for fault in self.faults:
                err = fault(call)
                if err is not None:
                    raise err
            return await self._serve(request, call)
        except ApiError as err:
            return aiohttp.web.json_response(err.status(), status=err.code)

    async def _serve(self, request: rendering.Request, call: Call) -> aiohttp.web.StreamResponse:
        assert request.resource is not None
        plural = request.resource.plural
        _g, _v, kind, namespaced, has_status = RESOURCES[plural]
        ns = request.namespace or ""
        if call.verb == "watch":
            return await self._watch(request, plural, ns)
        if call.verb == "list":
            return aiohttp.web.json_response(self._list(request, plural, ns))
        if call.verb == "create":
            body = dict(request.data or {})
            body.setdefault("metadata", {})
            if namespaced:
                body["metadata"]["namespace"] = ns
            name = body["metadata"].get("name")
            if not name:
                raise ApiError(422, "Invalid", f"{kind}: metadata.name: Required value")
            if (plural, ns, name) in self.state:
                raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
            body["metadata"].pop("resourceVersion", None)
            await self.write(plural, body)
            return aiohttp.web.json_response(body, status=201)
        key = (plural, ns, request.name or "")
        current = self.state.get(key)
        if current is None:
            raise ApiError(404, "NotFound", f'{plural} "{request.name}" not found')
        if call.verb == "get":
            return aiohttp.web.json_response(current)
        if call.verb == "delete":
            await self.remove(plural, ns, key[2])
            return aiohttp.web.json_response(current)
        status_only = request.subresource == "status"
        if request.subresource not in (None, "status") or (status_only and not has_status):
            raise ApiError(404, "NotFound", f"{plural}/{request.subresource}: no such subresource")
        if call.verb == "update":
            body = dict(request.data or {})
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{key[2]}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                )
            new = copy.deepcopy(current)
            if status_only:
                new["status"] = body.get("status")
            else:
                keep_status = current.get("status") if has_status else body.get("status")
                new = {k: v for k, v in body.items() if k != "status"}
                if keep_status is not None:
                    new["status"] = keep_status
                new["metadata"] = {
                    **(body.get("metadata") or {}),
                    "name": key[2],
                    **({"namespace": ns} if namespaced else {}),
                }
        elif call.verb == "patch":
            ctype = request.headers.get("Content-Type", "")
            if "merge-patch" not in ctype and "strategic-merge-patch" not in ctype:
                raise ApiError(415, "UnsupportedMediaType", f"patch type {ctype} not supported")
            patch = request.data if isinstance(request.data, dict) else {}
            if status_only:
                patch = {"status": patch.get("status")} if "status" in patch else {}
            elif has_status:
                patch = {k: v for k, v in patch.items() if k != "status"}
            new = merge_patch(copy.deepcopy(current), patch)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{call.verb} is not supported")
        await self.write(plural, new)
        return aiohttp.web.json_response(new)

    def _matching(
        self, plural: str, ns: str, obj: Mapping[str, Any], params: Mapping[str, str]
    ) -> bool:
        if ns and (obj.get("metadata") or {}).get("namespace") != ns:
            return False
        return _selector_matches(
            obj, params.get("fieldSelector", ""), params.get("labelSelector", "")
        )

    def _list(self, request: rendering.Request, plural: str, ns: str) -> dict[str, Any]:
        params = request.params
        items = sorted(
            (o for (p, _n, _m), o in self.state.items() if p == plural),
            key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]),
        )
        items = [o for o in items if self._matching(plural, ns, o, params)]
        rv, offset = self.rv, 0
        if params.get("continue"):
            token = json.loads(base64.b64decode(params["continue"]))
            if token["rv"] < self.compacted_rv:
                raise ApiError(410, "Expired", "The provided continue parameter is too old")
            rv, offset = token["rv"], token["offset"]
        limit = int(params.get("limit") or 0)
        page = items[offset : offset + limit] if limit else items[offset:]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and offset + limit < len(items):
            raw = json.dumps({"rv": rv, "offset": offset + limit}).encode()
            meta["continue"] = base64.b64encode(raw).decode()
        group, version, kind, _ns, _st = RESOURCES[plural]
        return {
            "kind": f"{kind}List",
            "apiVersion": f"{group}/{version}" if group else version,
            "metadata": meta,
            "items": [
                {k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in page
            ],
        }

    async def _watch(
        self, request: rendering.Request, plural: str, ns: str
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        since = params.get("resourceVersion", "")
        bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(params.get("timeoutSeconds") or 0) or None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        response = aiohttp.web.StreamResponse(
            status=200, headers={"Content-Type": "application/json"}
        )
        assert request._raw_request is not None
        await response.prepare(request._raw_request)
        expiry, closing = self.expiry, self.closing
        self.open_watches += 1
        group, version, kind, _n, _s = RESOURCES[plural]

        async def send(event: dict[str, Any]) -> None:
            await response.write(json.dumps(event).encode() + b"\n")

        try:
            if since in ("", "0"):
                pos = len(self.log)
                for (p, _n2, _m), obj in sorted(self.state.items()):
                    if p == plural and self._matching(plural, ns, obj, params):
                        await send({"type": "ADDED", "object": obj})
            elif int(since) < self.compacted_rv:
                await send(
                    {
                        "type": "ERROR",
                        "object": ApiError(
                            410,
                            "Expired",
                            f"too old resource version: {since} ({self.compacted_rv})",
                        ).status(),
                    }
                )
                return response
            else:
                pos = next((i for i, e in enumerate(self.log) if e[0] > int(since)), len(self.log))
            last_sent = loop.time()
            while True:
                while pos < len(self.log):
                    _rv, p, etype, obj = self.log[pos]
                    pos += 1
                    if p == plural and self._matching(plural, ns, obj, params):
                        await send({"type": etype, "object": obj})
                        last_sent = loop.time()
                if self.closing != closing or self.down or group in self.absent_groups:
                    return response
                if self.expiry != expiry:
                    await send(
                        {
                            "type": "ERROR",
                            "object": ApiError(
                                410, "Expired", "too old resource version (compacted)"
                            ).status(),
                        }
                    )
                    return response
                now = loop.time()
                if deadline is not None and now >= deadline:
                    break
                if bookmarks and now - last_sent >= self.bookmark_interval:
                    await send(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": kind,
                                "apiVersion": f"{group}/{version}" if group else version,
                                "metadata": {"resourceVersion": str(self.rv)},
                            },
                        }
                    )
                    last_sent = now
                wait = self.bookmark_interval
                if deadline is not None:
                    wait = min(wait, max(deadline - now, 0.001))
                changed = self._changed()  # taken before looking: a change after it sets it
                if pos >= len(self.log) and self.closing == closing and self.expiry == expiry:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), wait)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self.open_watches -= 1
        return response


class KubeEmulator:
    """Runs ``KubeAPI`` behind a real HTTP server in a background thread (sync tests)."""

    def __init__(self, *, bookmark_interval: float = 0.2) -> None:
        self.loop = asyncio.new_event_loop()
        self.api = KubeAPI()
        self.api.bookmark_interval = bookmark_interval
        self.server: kmock.Server | None = None
        self.port = 0
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="kube-emulator", daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def _run(self, coro: Any, timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> KubeEmulator:
        self._thread.start()

        async def enter() -> None:
            await self.api.__aenter__()
            await self._serve()

        self._run(enter())
        return self

    async def _serve(self) -> None:
        self.api.down = False
        self.server = kmock.Server(self.api, port=self.port or None)
        await self.server.__aenter__()
        self.port = self.server.port

    async def _shutdown(self) -> None:
        self.api.down = True
        self.api.closing += 1
        await self.api.poke()
        for _ in range(100):
            if not self.api.open_watches:
                break
            await asyncio.sleep(0.01)
        if self.server is not None:
            server, self.server = self.server, None
            await server.__aexit__(None, None, None)

    def stop(self) -> None:
        async def leave() -> None:
            await self._shutdown()
            await self.api.__aexit__(None, None, None)

        server = self.server
        try:
            self._run(leave())
        except Exception:
            # A shutdown that hung (a loaded machine) must not leave kmock's HTTP client to be
            # collected during a later test, where its __del__ warning fails that test.
            if server is not None:
                with contextlib.suppress(Exception):
                    self._run(server.client.close(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The API server is down: open watches end, new connections are refused."""
        self._run(self._shutdown())
        try:
            yield
        finally:
            self._run(self._serve())

    def go_down(self) -> None:
        self._run(self._shutdown())

    def come_back(self) -> None:
        self._run(self._serve())

    def uninstall(self, group: str) -> None:
        """The API group's CRDs are deleted: its objects are gone, its watches end, every
        request to it is answered 404 (as for a path the API server does not serve)."""

        async def go() -> None:
            self.api.absent_groups.add(group)
            for key in [k for k in self.api.state if RESOURCES[k[0]][0] == group]:
                del self.api.state[key]
            await self.api.poke()

        self._run(go())

    def install(self, group: str) -> None:
        """The API group's CRDs are applied (again): it is served, with no objects yet."""

        async def go() -> None:
            self.api.absent_groups.discard(group)

        self._run(go())

    def compact(self, *, expire_watches: bool = True) -> None:
        """Forget the change log: watches from an older resourceVersion get 410 Expired."""

        async def go() -> None:
            self.api.compacted_rv = self.api.rv
            if expire_watches:
                self.api.expiry += 1
            await self.api.poke()

        self._run(go())

    # -- objects -------------------------------------------------------------------------------

    def put(self, obj: Mapping[str, Any], *, notify: bool = True) -> dict[str, Any]:
        """Create or replace an object (as a user's kubectl apply would); returns it stored."""
        body = copy.deepcopy(dict(obj))
        plural = KIND_TO_PLURAL[body["kind"]]
        if RESOURCES[plural][0] in self.api.absent_groups:
            raise ValueError(
                f"{body['kind']}: the API group {RESOURCES[plural][0]} is not installed"
            )

        async def go() -> None:
            # Like kubectl apply: the status (written by controllers) is kept unless given.
            meta = body.get("metadata") or {}
            ns = meta.get("namespace", "default") if RESOURCES[plural][3] else ""
            old = self.api.state.get((plural, ns, meta.get("name", "")))
            if RESOURCES[plural][4] and "status" not in body and old and "status" in old:
                body["status"] = copy.deepcopy(old["status"])
            await self.api.write(plural, body, notify=notify)

        self._run(go())
        return body

    def delete(self, kind: str, namespace: str, name: str) -> None:
        ns = namespace if RESOURCES[KIND_TO_PLURAL[kind]][3] else ""
        self._run(self.api.remove(KIND_TO_PLURAL[kind], ns, name))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        ns = namespace if RESOURCES[KIND_TO_PLURAL[kind]][3] else ""

        async def go() -> dict[str, Any] | None:
            obj = self.api.state.get((KIND_TO_PLURAL[kind], ns, name))
            return copy.deepcopy(obj) if obj is not None else None

        result: dict[str, Any] | None = self._run(go())
        return result

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        plural = KIND_TO_PLURAL[kind]

        async def go() -> list[dict[str, Any]]:
            return [
                copy.deepcopy(o)
                for (p, ns, _n), o in sorted(self.api.state.items())
                if p == plural and (namespace is None or ns == namespace)
            ]

        result: list[dict[str, Any]] = self._run(go())
        return result

    @property
    def rv(self) -> int:
        return self.api.rv

    def calls(self, *, controller_only: bool = True) -> list[Call]:
        calls = list(self.api.calls)
        if controller_only:
            calls = [c for c in calls if c.user_agent.startswith(CONTROLLER_AGENT)]
        return calls

    def kubeconfig(self) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                "users": [{"name": "test", "user": {"token": "test-token"}}],
                "contexts": [
                    {"name": "emulator", "context": {"cluster": "emulator", "user": "test"}}
                ],
                "current-context": "emulator",
            }
        )


# -- a controller replica against the emulator ------------------------------------------------


class ModelProxy:
    """An in-process backend plugin whose 'proxy' is a small HTTP server routing by the model.

    It answers ``<backend name>`` for a request whose Host and path match a route of the model
    it was last given, 404 otherwise, so tests can send real traffic through it.
    """

    def __init__(self) -> None:
        self.applied: list[RouteModel] = []
        self.refuse_hosts: set[str] = set()
        self.model = RouteModel()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0]
                name = outer.route(host, self.path.split("?")[0])
                body = (name or "no route").encode()
                self.send_response(200 if name else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def route(self, host: str, path: str) -> str | None:
        model = self.model
        for vhost in model.vhosts:
            if vhost.host != host:
                continue
            for r in vhost.routes:
                if r.path_type is PathType.EXACT and path == r.path:
                    return r.backend
                if r.path_type is PathType.PREFIX and (
                    r.path == "/" or path == r.path or path.startswith(r.path.rstrip("/") + "/")
                ):
                    return r.backend
        return None

    def get(self, host: str, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    @hookimpl
    def polyingress_create_backend(self, settings: RunSettings) -> ModelProxy:
        return self

    @hookimpl
    def polyingress_start(self, backend: Any, model: RouteModel) -> ApplyResult:
        self._thread.start()
        self.model = model
        self.applied.append(model)
        return ApplyResult(reloaded=True, reasons=("start",))

    @hookimpl
    def polyingress_apply(self, backend: Any, model: RouteModel) -> ApplyResult:
        bad = [v for v in model.vhosts if v.host in self.refuse_hosts]
        if bad:
            refs = tuple(sorted({r.source for r in bad[0].routes}))
            raise ApplyError(f"host {bad[0].host} refused by the test proxy", refs=refs)
        self.model = model
        self.applied.append(model)
        return ApplyResult(reloaded=True, reasons=("test",))

    @hookimpl
    def polyingress_health(self, backend: Any) -> HealthReport:
        return HealthReport(live=True, ready=bool(self.applied))

    @hookimpl
    def polyingress_stop(self, backend: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def fast_options(**overrides: Any) -> KubeOptions:
    """Short timings for tests: 1 s lease, 0.1 s retries, fast backoff."""
    base: dict[str, Any] = {
        "lease_duration": 1.0,
        "renew_deadline": 0.6,
        "retry_period": 0.1,
        "backoff_initial": 0.05,
        "backoff_max": 0.3,
        "watch_timeout": 30,
        "request_timeout": 2.0,
        "initial_sync_timeout": 10.0,
        "status_resync": 0.5,
        "absent_retry": 0.3,
        "publish_refresh": 0.2,
        "event_series_interval": 0.2,
        "election_namespace": "polyingress",
        "backend": "test",
    }
    base.update(overrides)
    return KubeOptions(**base)


class Replica:
    """One controller replica wired exactly as ``polyingress run`` wires Kubernetes mode."""

    def __init__(
        self,
        emulator: KubeEmulator,
        *,
        name: str = "replica-a",
        gateway_statuses: Any = None,
        **overrides: Any,
    ) -> None:
        opts = fast_options(identity=name, **overrides)
        self.proxy = ModelProxy()
        self.store = ObjectStore()
        settings = RunSettings(
            backend="test",
            build=BuildOptions(configmap=opts.configmap),
        )
        self.pm = plugin_manager(("test", self.proxy))
        self.controller = Controller(settings, self.pm, self.store, debounce=0.01)
        configuration = kclient.Configuration(host=emulator.url)
        self.runtime = KubeRuntime(
            opts, api=api_client(configuration=configuration), gateway_statuses=gateway_statuses
        )
        self.health = self.runtime.wrap_health(self.controller.health)

    def start(self) -> Replica:
        self.runtime.start(self.store, self.controller)
        self.controller.start()
        return self

    def stop(self) -> None:
        self.runtime.stop()
        self.controller.stop()

    def kill(self) -> None:
        """A crash: everything stops, the lease is not released."""
        rt = self.runtime
        if rt.elector is not None:
            rt.elector.stop(release=False)
        if rt.status is not None:
            rt.status.stop()
        if rt.gateway_status is not None:
            rt.gateway_status.stop()
        if rt.events is not None:
            rt.events.recorder.stop()
        if rt.source is not None:
            rt.source.stop()
        self.controller.stop()

    @property
    def leading(self) -> bool:
        return bool(self.runtime.elector is not None and self.runtime.elector.is_leader())

    def model(self) -> RouteModel:
        return self.proxy.model


# -- deploy/: a Python equivalent of the kustomize features used, and the RBAC it grants ------

OVERLAYS = ("nginx", "haproxy", "traefik")


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add/replace/remove (what the overlays use)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        kind = op["op"]
        if kind == "add":
            if isinstance(target, list):
                idx = len(target) if last == "-" else int(last)
                target.insert(idx, copy.deepcopy(op["value"]))
            else:
                target[last] = copy.deepcopy(op["value"])
        elif kind == "replace":
            if isinstance(target, list):
                target[int(last)] = copy.deepcopy(op["value"])
            else:
                if last not in target:
                    raise KeyError(op["path"])
                target[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del target[int(last) if isinstance(target, list) else last]
        else:
            raise ValueError(f"unsupported JSON patch op {kind!r}")
    return doc


def _targets(obj: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    api = str(obj.get("apiVersion", ""))
    group, _, version = api.rpartition("/")
    checks = {
        "group": group,
        "version": version,
        "kind": obj.get("kind"),
        "name": (obj.get("metadata") or {}).get("name"),
        "namespace": (obj.get("metadata") or {}).get("namespace"),
    }
    return all(checks[k] == v for k, v in target.items())


KUSTOMIZE_KEYS = frozenset({"apiVersion", "kind", "resources", "patches"})


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """``kustomize build`` for the features deploy/ uses: resources and JSON6902 patches."""
    kfile = directory / "kustomization.yaml"
    spec = yaml.safe_load(kfile.read_text())
    unknown = set(spec) - KUSTOMIZE_KEYS
    if unknown:
        raise ValueError(f"{kfile}: the Python kustomize does not implement {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for res in spec.get("resources") or []:
        path = directory / res
        if path.is_dir():
            objects.extend(kustomize_build(path))
        else:
            objects.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch in spec.get("patches") or []:
        ops = yaml.safe_load(patch["patch"])
        hits = [i for i, o in enumerate(objects) if _targets(o, patch["target"])]
        if not hits:
            raise ValueError(f"{kfile}: patch target {patch['target']} matches nothing")
        for i in hits:
            objects[i] = json_patch(objects[i], ops)
    return objects


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]] | None:
    """``kubectl kustomize`` when a kubectl with kustomize v4+ is installed, else None."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    try:
        version = subprocess.run(
            [kubectl, "version", "--client"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"Kustomize Version: v(\d+)", version)
    if found is None or int(found.group(1)) < 4:
        return None  # e.g. Debian's kubernetes-client 1.20 (kustomize v2: no `patches`)
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory}: {out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@dataclass(frozen=True, slots=True)
class Grant:
    """One verb on one resource, cluster-wide (namespace "") or in a namespace."""

    namespace: str
    group: str
    resource: str
    verb: str
    names: frozenset[str] | None


def grants_of(objects: list[dict[str, Any]], sa: tuple[str, str]) -> list[Grant]:
    """What the ServiceAccount ``sa`` (namespace, name) may do, from (Cluster)Role(Binding)s."""
    roles: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for o in objects:
        if o["kind"] in ("ClusterRole", "Role"):
            ns = o["metadata"].get("namespace", "") if o["kind"] == "Role" else ""
            roles[(o["kind"], ns, o["metadata"]["name"])] = o.get("rules") or []
    out: list[Grant] = []
    for b in objects:
        if b["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        subjects = b.get("subjects") or []
        if not any(
            s.get("kind") == "ServiceAccount" and (s.get("namespace"), s.get("name")) == sa
            for s in subjects
        ):
            continue
        scope = b["metadata"].get("namespace", "") if b["kind"] == "RoleBinding" else ""
        ref = b["roleRef"]
        role_ns = scope if ref["kind"] == "Role" else ""
        for rule in roles[(ref["kind"], role_ns, ref["name"])]:
            names = frozenset(rule["resourceNames"]) if rule.get("resourceNames") else None
            for group in rule.get("apiGroups") or []:
                for res in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        out.append(Grant(scope, group, res, verb, names))
    return out


def allows(grant: Grant, call: Call) -> bool:
    if grant.namespace and grant.namespace != call.namespace:
        return False
    if grant.names is not None and call.name not in grant.names:
        return False
    return (grant.group, grant.resource, grant.verb) == (call.group, call.resource, call.verb)


def deployed_grants(overlay: str = "nginx") -> list[Grant]:
    return grants_of(kustomize_build(DEPLOY / "overlays" / overlay), ("polyingress", "polyingress"))


def forbidden_calls(calls: list[Call], grants: list[Grant] | None = None) -> list[Call]:
    grants = deployed_grants() if grants is None else grants
    return sorted({c for c in calls if not any(allows(g, c) for g in grants)})


# -- objects -------------------------------------------------------------------------------------


def tls_secret(name: str, host: str, ns: str = "default") -> dict[str, Any]:
    cert = self_signed(host, (host,))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert.cert_pem.encode()).decode(),
            "tls.key": base64.b64encode(cert.key_pem.encode()).decode(),
        },
    }


def configmap(data: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "polyingress", "namespace": "polyingress"},
        "data": data or {},
    }


@contextlib.contextmanager
def running_emulator(bookmark_interval: float = 0.1) -> Iterator[KubeEmulator]:
    """An emulator for one test; on exit, every call the controller made must be allowed by
    the RBAC in deploy/."""
    emu = KubeEmulator(bookmark_interval=bookmark_interval).start()
    try:
        yield emu
    finally:
        emu.stop()
    assert forbidden_calls(emu.calls()) == [], "calls not allowed by deploy/ RBAC"


@contextlib.contextmanager
def replicas(emulator: KubeEmulator, *names: str, **overrides: Any) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        for name in names or ("replica-a",):
            started.append(Replica(emulator, name=name, **overrides).start())
        yield started
    finally:
        for r in started:
            with contextlib.suppress(Exception):
                r.stop()

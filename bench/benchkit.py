"""What the benchmark scripts share: the fast upstream, wrk, the probe objects, polling.

The scripts put ``bench/`` and ``tests/`` on ``sys.path`` before importing this module (it uses
``tests/livekit.py`` for its requests). The generated worlds are in ``worlds.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worlds import generated_world

from polyingress.testing.live import Controller, Response, _SNIConnection, request

PROBE_HOST = "probe.bench.example.com"
_CLIENT_TLS = ssl.create_default_context()
_CLIENT_TLS.check_hostname = False
_CLIENT_TLS.verify_mode = ssl.CERT_NONE
WRK_THREADS = 2
WRK_CONNECTIONS = 50


# -- the upstream -------------------------------------------------------------------------------


def start_upstream(
    tmp: Path, addresses: Sequence[str], port: int, body: str = "ok\n"
) -> subprocess.Popen[bytes]:
    """A separate one-worker nginx answering 200 with ``body`` on ``addresses``, ``port``.

    It is the upstream of the proxy under test (never that proxy itself), cheap enough that the
    proxy is what a wrk run measures: no access log, a million requests per keep-alive
    connection. ``body`` may use nginx variables (``$server_addr``). Its files are in
    ``tmp/upstream``; returns once it answers on the first address, or raises with its error
    log. It runs in a session of its own: stop it with ``stop_group``.
    """
    up = tmp / "upstream"
    up.mkdir(parents=True, exist_ok=True)
    conf = up / "nginx.conf"
    listens = " ".join(f"listen {a}:{port};" for a in addresses)
    text = body.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    conf.write_text(
        f"""worker_processes 1; daemon off; pid {up}/nginx.pid; error_log {up}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {up}/b; proxy_temp_path {up}/p;
  fastcgi_temp_path {up}/f; uwsgi_temp_path {up}/u; scgi_temp_path {up}/s;
  server {{ {listens} keepalive_requests 1000000;
    location / {{ default_type text/plain; return 200 "{text}"; }} }} }}
"""
    )
    proc = subprocess.Popen(
        ["nginx", "-p", f"{up}/", "-e", f"{up}/error.log", "-c", str(conf)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(Exception):
            answer = request(port, "upstream", "/", address=addresses[0], timeout=1)
            if answer.status == 200 and proc.poll() is None:
                return proc
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_group(proc)
            log = up / "error.log"
            text = log.read_text() if log.exists() else "(no error log)"
            raise RuntimeError(f"the upstream nginx did not start: {text}")
        time.sleep(0.05)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started with ``start_new_session`` and all of its session's processes:
    SIGQUIT (nginx's graceful stop), at most 10 s, then SIGKILL to what is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGQUIT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)


def last_host(n: int) -> str:
    """The host of the last Ingress of ``generated_world(n)``."""
    i = n - 1
    return f"app-{i:05d}.ns-{i // 100:04d}.apps.example.com"


def upstream_world(
    n: int, address: str, port: int, *, wildcard: bool = False
) -> list[dict[str, Any]]:
    """``generated_world`` with every Service's one endpoint on the upstream at ``address``."""
    objs = generated_world(n, port=port, wildcard=wildcard)
    for obj in objs:
        if obj["kind"] == "EndpointSlice":
            obj["endpoints"] = [{"addresses": [address], "conditions": {"ready": True}}]
    return objs


# -- wrk ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run printed (``output``), parsed."""

    rps: float
    requests: int
    latency_ms: float | None  # the mean latency
    socket_errors: str | None  # "connect 0, read 3, write 0, timeout 0", if wrk printed any
    errors: int  # the socket errors, summed
    non2xx: int  # answers with a status other than 2xx or 3xx
    output: str


_LATENCY_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    port: int,
    host: str,
    seconds: int,
    path: str = "/",
    *,
    allow_non2xx: bool = False,
    headers: Sequence[str] = (),
) -> WrkResult:
    """wrk (2 threads, 50 connections) for ``seconds`` against ``http://127.0.0.1:port/path``
    with ``Host: host`` and ``headers`` ("Name: value"). Raises if it fails, and if any answer
    was not 2xx or 3xx unless ``allow_non2xx`` (the caller then counts them itself)."""
    extra = [arg for header in headers for arg in ("-H", header)]
    out = subprocess.run(
        [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{WRK_CONNECTIONS}",
            f"-d{seconds}s",
            "-H",
            f"Host: {host}",
            *extra,
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx and not allow_non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} non-2xx answers for {host}:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    latency = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return WrkResult(
        rps=float(rps.group(1)) if rps else 0.0,
        requests=int(total.group(1)) if total else 0,
        latency_ms=float(latency.group(1)) * _LATENCY_SCALE[latency.group(2)] if latency else None,
        socket_errors=errors.group(1) if errors else None,
        errors=sum(int(n) for n in re.findall(r"\d+", errors.group(1))) if errors else 0,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        output=out,
    )


# -- objects ------------------------------------------------------------------------------------


def service(name: str, target_port: int | None = None) -> dict[str, Any]:
    """A Service in namespace ``bench`` with one port, 80, named ``http``."""
    port: dict[str, Any] = {"name": "http", "port": 80}
    if target_port is not None:
        port["targetPort"] = target_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"ports": [port]},
    }


def endpoint_slice(service_name: str, addresses: Sequence[str], port: int) -> dict[str, Any]:
    """The EndpointSlice ``<service>-1`` of a ``service``: ready ``addresses`` on ``port``."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-1",
            "namespace": "bench",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
    }


def ingress(
    name: str, host: str, paths: Sequence[str] = ("/",), service_name: str | None = None
) -> dict[str, Any]:
    """An Ingress of class polyingress: Prefix ``paths`` on ``host`` to port 80 of the Service
    ``service_name`` (default: ``name``)."""
    backend = {"service": {"name": service_name or name, "port": {"number": 80}}}
    http_paths = [{"path": p, "pathType": "Prefix", "backend": backend} for p in paths]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {
            "ingressClassName": "polyingress",
            "rules": [{"host": host, "http": {"paths": http_paths}}],
        },
    }


def probe_objects(
    addresses: Sequence[str], port: int, paths: Sequence[str], with_second: bool = False
) -> list[dict[str, Any]]:
    """The probe: Service, EndpointSlice (``addresses`` on ``port``) and Ingress on
    ``PROBE_HOST`` with ``paths``; ``with_second`` adds the Ingress ``probe-two`` on
    ``two.PROBE_HOST`` with the same paths to the same Service."""
    objs = [
        service("probe", target_port=port),
        endpoint_slice("probe", addresses, port),
        ingress("probe", PROBE_HOST, paths),
    ]
    if with_second:
        objs.append(ingress("probe-two", "two." + PROBE_HOST, paths, service_name="probe"))
    return objs


# -- measuring ----------------------------------------------------------------------------------


def reloads(ctl: Controller) -> float:
    """The proxy reloads a running controller counted (``polyingress_reloads_total``, every
    reason), from its /metrics."""
    total = 0.0
    for line in ctl.metrics().splitlines():
        if line.startswith("polyingress_reloads_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def served(
    port: int,
    host: str,
    path: str,
    ok: Callable[[Response], bool],
    timeout: float = 120.0,
    scheme: str = "http",
) -> float:
    """When ``host`` + ``path`` through the proxy on ``port`` first answers ``ok``: polled every
    2 ms on fresh connections (errors count as not yet; ``scheme`` https sends ``host`` as
    SNI). Returns that ``time.monotonic()``; raises TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # HTTPS: a fresh connection each time too, but one SSL context (creating one loads
            # the system's CA store: ~17 ms, more than most changes take).
            conn = (
                _SNIConnection("127.0.0.1", port, timeout=2, context=_CLIENT_TLS, sni=host)
                if scheme == "https"
                else None
            )
            try:
                if ok(request(port, host, path, timeout=2, scheme=scheme, conn=conn)):
                    return time.monotonic()
            finally:
                if conn is not None:
                    conn.close()
        except Exception:
            pass
        time.sleep(0.002)
    raise TimeoutError(f"{host}{path}: no change served within {timeout}s")


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (the nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

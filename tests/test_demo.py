"""The README's main command: `polyingress demo cafe` serves the tutorial's cafe example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from livekit import REPO, backend_param, free_port, get, wait_until

pytestmark = pytest.mark.live


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
    found = {root}
    while new := {pid for pid, ppid in parents.items() if ppid in found} - found:
        found |= new
    return found - {root}


# nginx is the default backend: no --backend flag; the others by name (scripts/demo.sh passes
# its arguments on: bash scripts/demo.sh --backend traefik). caddy is the third-party backend in
# contrib/caddy: `polyingress run --backend caddy --manifests examples/cafe`.
@pytest.mark.parametrize(
    "backend", [backend_param(n) for n in ("nginx", "haproxy", "traefik", "caddy")]
)
def test_demo_cafe_serves_coffee_and_tea_over_tls(tmp_path: Path, backend: str) -> None:
    http, https, health, dashboard = free_port(), free_port(), free_port(), free_port()
    flags = [] if backend == "nginx" else ["--backend", backend]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polyingress.core.runtime.cli",
            "demo",
            "cafe",
            "--http-port",
            str(http),
            "--https-port",
            str(https),
            "--health-port",
            str(health),
            "--workdir",
            str(tmp_path / "work"),
            "--exit-after",
            "90",
            "--dashboard",
            "--dashboard-port",
            str(dashboard),
            *flags,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    served = False
    try:
        host = "cafe.example.com"
        wait_until(lambda: get(https, host, "/coffee", scheme="https").status == 200, timeout=45)
        served = True
        coffee = get(https, host, "/coffee", scheme="https")
        assert coffee.peer_cn == host
        assert coffee.json()["server_name"].startswith("coffee-")
        assert get(https, host, "/tea", scheme="https").json()["server_name"].startswith("tea-")
        redirect = get(http, host, "/tea")
        assert redirect.status == 301  # GET; other methods get 308
        assert redirect.headers["location"] == f"https://{host}:{https}/tea"
        assert get(http, "127.0.0.1", "/").status == 404
        # --dashboard: the page where every request goes, on loopback (its address is printed).
        page = get(dashboard, "127.0.0.1", "/?url=https://cafe.example.com/coffee")
        assert page.status == 200 and b"proxied to default/coffee-svc:80" in page.body
        proxies = descendants(proc.pid)
        assert proxies, "the proxy is seen"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        if not served:  # what the demo said, with the assertion that ends the test
            print(out.decode(errors="replace")[-5000:])
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert [pid for pid in proxies if alive(pid)] == [], "the demo left processes running"
    assert b"curl --resolve cafe.example.com" in out
    assert f"backend {backend}".encode() in out
    assert f"Dashboard (where every request goes): http://127.0.0.1:{dashboard}/".encode() in out

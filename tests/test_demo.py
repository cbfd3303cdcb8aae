"""The README's main command: `polyingress demo cafe` serves the tutorial's cafe example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from livekit import REPO, free_port, get, needs, wait_until

pytestmark = [
    pytest.mark.live,
    needs("nginx"),
]


def test_demo_cafe_serves_coffee_and_tea_over_tls(tmp_path: Path) -> None:
    http, https, health = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polyingress.core.cli",
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
            "60",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        host = "cafe.example.com"
        wait_until(lambda: get(https, host, "/coffee", scheme="https").status == 200, timeout=30)
        coffee = get(https, host, "/coffee", scheme="https")
        assert coffee.peer_cn == host
        assert coffee.json()["server_name"].startswith("coffee-")
        assert get(https, host, "/tea", scheme="https").json()["server_name"].startswith("tea-")
        redirect = get(http, host, "/tea")
        assert redirect.status == 301  # GET; other methods get 308
        assert redirect.headers["location"] == f"https://{host}:{https}/tea"
        assert get(http, "127.0.0.1", "/").status == 404
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert b"curl --resolve cafe.example.com" in out

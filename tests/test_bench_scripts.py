"""Every benchmark script still starts: its imports resolve and it parses its command line.

Benchmarks are not run by the test suite (speed goals live there, measured on demand), so a
moved helper would otherwise break them unnoticed until someone measures."""

from __future__ import annotations

import subprocess
import sys

import pytest
from livekit import REPO

SCRIPTS = sorted(p.name for p in (REPO / "bench").glob("bench_*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_starts(script: str) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout

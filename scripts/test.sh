#!/usr/bin/env bash
# Set everything up, then run the linters and the whole test suite (real nginx and HAProxy).
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
bash scripts/typecheck.sh
# Three workers on two cores (most of a live test is waiting for proxies and requests); each test
# module runs on one worker, so its proxies start once. POLYINGRESS_TEST_WORKERS=0: one process.
exec .venv/bin/python -m pytest -n "${POLYINGRESS_TEST_WORKERS:-3}" --dist loadscope "$@"

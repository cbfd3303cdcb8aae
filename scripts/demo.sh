#!/usr/bin/env bash
# Set everything up, then run the cafe example of the Kubernetes Ingress tutorial on nginx.
# Usage: bash scripts/demo.sh [extra `polyingress demo` flags, e.g. --backend haproxy]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/polyingress demo cafe "$@"

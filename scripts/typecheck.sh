#!/usr/bin/env bash
# mypy --strict on the package. The repository maps core/ and plugins/ onto polyingress.core and
# polyingress.plugins (setuptools package-dir), which mypy cannot follow through an editable
# install: check a symlinked tree with the installed layout instead.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/polyingress"
ln -s "$PWD/core" "$root/polyingress/core"
ln -s "$PWD/plugins" "$root/polyingress/plugins"
ln -s "$PWD/testing" "$root/polyingress/testing"
ln -s "$PWD/examples/example-backend/polyingress_example" "$root/polyingress_example"
ln -s "$PWD/contrib/caddy/polyingress_caddy" "$root/polyingress_caddy"
cd "$root"
exec "$OLDPWD/.venv/bin/mypy" --strict --cache-dir "$OLDPWD/.mypy_cache" \
    -p polyingress.core -p polyingress.plugins -p polyingress.testing -p polyingress_example \
    -p polyingress_caddy

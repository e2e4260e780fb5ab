#!/usr/bin/env bash
# Creates .venv with the collector installed (editable). Usage: deploy/bootstrap.sh [EXTRAS]
# Installs python3-venv through apt when the machine lacks it (fresh Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    deploy/apt-install.sh python3 python3-venv python3-pip
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
    touch "$stamp"
fi

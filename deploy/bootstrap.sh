#!/usr/bin/env bash
# Creates .venv with the collector installed (editable). Usage: deploy/bootstrap.sh [EXTRAS]
# Installs python3-venv through apt when the machine lacks it (fresh Debian). Reinstalls
# only when pyproject.toml changed since the last install that covered EXTRAS (the
# "test" install covers the plain one). pip's output goes to .venv/install.log and is
# shown only when the install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    deploy/apt-install.sh python3 python3-venv python3-pip
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed-${extras:-base}"
covering=("$stamp")
[ -z "$extras" ] && covering+=(.venv/.installed-test)
for candidate in "${covering[@]}"; do
    if [ -f "$candidate" ] && [ ! pyproject.toml -nt "$candidate" ]; then
        exit 0
    fi
done
echo "Installing the collector into .venv (pip; log in .venv/install.log)..." >&2
if ! { .venv/bin/python -m pip install --quiet --upgrade pip \
       && .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"; } \
       >.venv/install.log 2>&1; then
    cat .venv/install.log >&2
    exit 1
fi
touch "$stamp"

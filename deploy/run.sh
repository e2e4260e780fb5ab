#!/usr/bin/env bash
# The collector's main job. Without -c/COLLECTOR_CONFIG it runs the embedded defaults:
# its own metrics to the console and to metrics.lp in its state directory.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/bootstrap.sh
exec .venv/bin/collector run "$@"

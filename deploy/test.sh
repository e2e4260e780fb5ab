#!/usr/bin/env bash
# The whole test suite: installs what it needs (venv, InfluxDB, VictoriaMetrics, MariaDB,
# mosquitto, systemd-analyze), lints, then runs every test against real servers started
# on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/bootstrap.sh test
deploy/apt-install.sh influxdb victoria-metrics mariadb-server mariadb-client mosquitto \
    mosquitto-clients openssl systemd
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"

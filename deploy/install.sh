#!/usr/bin/env bash
# Bare-metal install (a Raspberry Pi or any Debian without Docker), run from a checkout:
#   sudo deploy/install.sh
# - a system user `collector` in the groups dialout and plugdev (the instruments' nodes);
# - the collector in a virtual environment under PREFIX (default /opt/collector);
# - the udev rules for the SE521 and the RAVEn/EMU-2 (/dev/se521, /dev/raven);
# - /etc/collector/collector.toml from deploy/collector.example.toml, unless one exists;
# - the systemd unit, enabled and started (restarted on an upgrade).
# Running it again upgrades the collector and keeps the config.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-/opt/collector}"
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 2; }

deploy/apt-install.sh python3 python3-venv
getent group plugdev >/dev/null || groupadd --system plugdev
if ! id collector >/dev/null 2>&1; then
    useradd --system --user-group --groups dialout,plugdev --home-dir /var/lib/collector \
        --no-create-home --shell /usr/sbin/nologin collector
fi

[ -x "$prefix/bin/python" ] || python3 -m venv "$prefix"
"$prefix/bin/pip" install --quiet --disable-pip-version-check --upgrade .
"$prefix/bin/collector" --version

install -m 0644 deploy/udev/70-instruments.rules /etc/udev/rules.d/70-instruments.rules
if command -v udevadm >/dev/null; then
    udevadm control --reload
    udevadm trigger --subsystem-match=tty --subsystem-match=hidraw
fi

install -d -m 0750 -g collector /etc/collector
if [ ! -e /etc/collector/collector.toml ]; then
    install -m 0640 -g collector deploy/collector.example.toml /etc/collector/collector.toml
    echo "install.sh: wrote /etc/collector/collector.toml; edit it, then: systemctl restart collector"
fi
"$prefix/bin/collector" check -c /etc/collector/collector.toml

sed "s|/opt/collector|$prefix|g" deploy/systemd/collector.service \
    > /etc/systemd/system/collector.service
systemctl daemon-reload
systemctl enable collector
systemctl restart collector
echo "install.sh: running; logs: journalctl -u collector -f"

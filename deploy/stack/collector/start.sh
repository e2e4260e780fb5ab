#!/bin/sh
# The stack's collector: collector.toml, plus the config of each optional part of the
# stack that COMPOSE_PROFILES turns on (mirror.toml for "mirror", mqtt.toml for "mqtt"),
# merged in that order. COMPOSE_PROFILES is the one switch for both compose and the
# collector, so a part's outputs exist exactly when its server runs.
set -eu
config_dir="${COLLECTOR_CONFIG_DIR:-/etc/collector}"
set -- -c "$config_dir/collector.toml"
for profile in $(printf '%s' "${COMPOSE_PROFILES:-}" | tr ',' ' '); do
    if [ -f "$config_dir/$profile.toml" ]; then
        set -- "$@" -c "$config_dir/$profile.toml"
    fi
done
exec collector run "$@"

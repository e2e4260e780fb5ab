#!/bin/sh
# Copies Grafana's provisioning files from SOURCE to TARGET and fills in the alert rules'
# temperature limits ${ALERT_T1_BELOW} ... ${ALERT_T4_ABOVE} from the environment.
# Grafana expands environment variables in most provisioning fields, but not inside an
# alert rule's queries and expressions (where $__interval and friends live), so the
# limits are written into a copy before Grafana starts.
#
#   render-provisioning.sh SOURCE TARGET
set -eu
source_dir=$1
target_dir=$2
rm -rf "$target_dir"
mkdir -p "$target_dir"
cp -R "$source_dir/." "$target_dir/"
for channel in 1 2 3 4; do
    for side in BELOW ABOVE; do
        name="ALERT_T${channel}_${side}"
        value=$(printenv "$name" || true)
        if ! printf '%s' "$value" | grep -Eq '^-?[0-9]+([.][0-9]+)?$'; then
            echo "render-provisioning: $name must be a number of degrees Celsius, got '$value'" >&2
            exit 2
        fi
        find "$target_dir/alerting" -name '*.yaml' -exec sed -i "s/\\\${$name}/$value/g" {} +
    done
done

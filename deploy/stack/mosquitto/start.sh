#!/bin/sh
# Writes mosquitto's password file from MQTT_USERNAME / MQTT_PASSWORD (hashed by
# mosquitto_passwd), readable only by the broker, then starts the broker. Written at
# every start, so changing the password in .env and restarting is enough.
set -eu
: "${MQTT_USERNAME:?}" "${MQTT_PASSWORD:?}"
config="${MOSQUITTO_CONFIG:-/mosquitto/config/mosquitto.conf}"
passwords=$(sed -n 's/^password_file[[:space:]]\{1,\}//p' "$config")
umask 077
rm -f "$passwords"
mosquitto_passwd -c -b "$passwords" "$MQTT_USERNAME" "$MQTT_PASSWORD"
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown mosquitto:mosquitto "$passwords"
fi
exec mosquitto -c "$config"

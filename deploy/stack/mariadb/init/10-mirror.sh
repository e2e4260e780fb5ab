#!/bin/sh
# First start of the stack's MariaDB (the image runs /docker-entrypoint-initdb.d once,
# on an empty data volume, after creating MARIADB_USER): the databases of the legacy
# tables the collector mirrors into, the collector's rights on them, and a read-only
# user for Grafana. The collector creates and checks the tables themselves.
#
# Runs with the mariadb client against the server the image has started for
# initialisation (or any server: MYSQL_HOST and MYSQL_TCP_PORT are honoured), as root.
set -eu
: "${MARIADB_USER:?}" "${MARIADB_GRAFANA_USER:?}" "${MARIADB_GRAFANA_PASSWORD:?}"

sql_string() {
    # A value as an SQL string literal: quotes and backslashes escaped.
    printf "'%s'" "$(printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/''/g")"
}

collector=$(sql_string "$MARIADB_USER")
grafana=$(sql_string "$MARIADB_GRAFANA_USER")
grafana_password=$(sql_string "$MARIADB_GRAFANA_PASSWORD")

MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-}" mariadb --user=root <<SQL
CREATE DATABASE IF NOT EXISTS \`SE521\`;
CREATE DATABASE IF NOT EXISTS \`raven\`;
GRANT ALL PRIVILEGES ON \`SE521\`.* TO $collector@'%';
GRANT ALL PRIVILEGES ON \`raven\`.* TO $collector@'%';
CREATE USER IF NOT EXISTS $grafana@'%' IDENTIFIED BY $grafana_password;
GRANT SELECT ON \`SE521\`.* TO $grafana@'%';
GRANT SELECT ON \`raven\`.* TO $grafana@'%';
SQL

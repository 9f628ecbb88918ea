#!/usr/bin/env bash
# Installs (from Debian's packages, when missing) and starts PostgreSQL and RabbitMQ on loopback for the
# distributed mode and the tests. Idempotent: a second run finds them running and returns at once.
#
#   deploy/scripts/deps.sh            # start both, print the connection strings
#
# Environment: MAILMESH_PG_PORT (5432), MAILMESH_AMQP_PORT (5672).
set -euo pipefail

PG_PORT="${MAILMESH_PG_PORT:-5432}"
AMQP_PORT="${MAILMESH_AMQP_PORT:-5672}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v rabbitmq-server >/dev/null 2>&1 || need+=(rabbitmq-server)
if [ "${MAILMESH_TEST_TOOLS:-0}" = "1" ]; then
  command -v swaks >/dev/null 2>&1 || need+=(swaks)
  command -v smtp-sink >/dev/null 2>&1 || need+=(postfix)
fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "deps: installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start services on install (no init system here); we start them below.
  if [ ! -f /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- PostgreSQL -------------------------------------------------------------------------------
PG_VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
if ! $SUDO pg_lsclusters -h 2>/dev/null | grep -q "^$PG_VERSION main"; then
  $SUDO pg_createcluster "$PG_VERSION" main -p "$PG_PORT" >/dev/null
fi
if ! $SUDO pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
  $SUDO pg_ctlcluster "$PG_VERSION" main start -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c max_connections=300 -c fsync=on"
fi
for _ in $(seq 1 60); do
  su postgres -c "psql -p $PG_PORT -qAtc 'select 1'" >/dev/null 2>&1 && break || sleep 0.5
done
psql_admin() { su postgres -c "psql -p $PG_PORT -v ON_ERROR_STOP=1 -qAtc \"$1\""; }
psql_admin "select 1 from pg_roles where rolname='mailmesh'" | grep -q 1 ||
  psql_admin "create role mailmesh login createdb password 'mailmesh'"
psql_admin "select 1 from pg_database where datname='mailmesh'" | grep -q 1 ||
  psql_admin "create database mailmesh owner mailmesh"

# --- RabbitMQ ---------------------------------------------------------------------------------
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT" ERL_EPMD_ADDRESS=127.0.0.1
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  # The distribution port and management stay on loopback too.
  export RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000))
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do
    rabbitmqctl -q status >/dev/null 2>&1 && break || sleep 1
  done
  rabbitmqctl -q status >/dev/null || { echo "deps: RabbitMQ did not start; see /var/log/rabbitmq" >&2; exit 1; }
fi

echo "deps: PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT, RabbitMQ on 127.0.0.1:$AMQP_PORT"
echo "ConnectionStrings__Spool=Host=127.0.0.1;Port=$PG_PORT;Username=mailmesh;Password=mailmesh;Database=mailmesh"
echo "ConnectionStrings__RabbitMq=amqp://guest:guest@127.0.0.1:$AMQP_PORT/"

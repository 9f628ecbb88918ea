#!/usr/bin/env bash
# Runs MailMesh in the distributed mode on one host: PostgreSQL and RabbitMQ on loopback (started by deps.sh),
# the schema migrator, then the five services as separate processes, each with its own bus connection.
#
#   deploy/scripts/run-distributed.sh start      # build (Release), migrate, start; prints the endpoints
#   deploy/scripts/run-distributed.sh stop       # SIGTERM every service (they drain), then wait
#   deploy/scripts/run-distributed.sh status
#
# Any MailMesh setting can be passed as an environment variable (Section__Key), e.g.
#   Dns__Servers=127.0.0.1:5353 Delivery__Port=2626 deploy/scripts/run-distributed.sh start
# Environment: MAILMESH_SMTP (127.0.0.1:2525), MAILMESH_HTTP_BASE (8081: ingress 8081, policy 8082, queue 8083,
# dns 8084, delivery 8085), MAILMESH_RUN_DIR (./data/distributed: logs and pid files), MAILMESH_NO_BUILD=1.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
run_dir="${MAILMESH_RUN_DIR:-$root/data/distributed}"
services=(policy queue dns delivery ingress)

start() {
  mkdir -p "$run_dir"
  eval "$("$root/deploy/scripts/deps.sh" | grep '^ConnectionStrings__' | sed 's/^/export "/; s/$/"/')"
  if [ "${MAILMESH_NO_BUILD:-0}" != "1" ]; then
    dotnet build "$root/MailMesh.slnx" -c Release --nologo -v q -clp:ErrorsOnly
  fi
  local bin="bin/Release/net10.0"
  echo "distributed: migrating the schema"
  dotnet "$root/services/MailMesh.Migrator/$bin/MailMesh.Migrator.dll"

  local port="${MAILMESH_HTTP_BASE:-8081}" i=0
  for service in "${services[@]}"; do
    local name="MailMesh.${service^}"
    local http="http://127.0.0.1:$((port + i))"
    i=$((i + 1))
    if [ -f "$run_dir/$service.pid" ] && kill -0 "$(cat "$run_dir/$service.pid")" 2>/dev/null; then
      echo "distributed: $service already running (pid $(cat "$run_dir/$service.pid"))"; continue
    fi
    (
      cd "$root/services/$name"
      export Urls="$http"
      [ "$service" = ingress ] && export Ingress__Listen="${MAILMESH_SMTP:-127.0.0.1:2525}"
      exec dotnet "$bin/$name.dll" >"$run_dir/$service.log" 2>&1
    ) &
    echo $! >"$run_dir/$service.pid"
    echo "distributed: $service pid $! http $http"
  done

  # Ready when every service's /readyz answers 200 (RabbitMQ and PostgreSQL reachable).
  i=0
  for service in "${services[@]}"; do
    local url="http://127.0.0.1:$((port + i))/readyz"
    i=$((i + 1))
    for _ in $(seq 1 120); do
      if curl -fsS "$url" >/dev/null 2>&1; then break; fi
      if ! kill -0 "$(cat "$run_dir/$service.pid")" 2>/dev/null; then
        echo "distributed: $service exited; last log lines:" >&2; tail -n 20 "$run_dir/$service.log" >&2; exit 1
      fi
      sleep 0.5
    done
    curl -fsS "$url" >/dev/null || { echo "distributed: $service not ready at $url" >&2; exit 1; }
  done
  echo "distributed: ready. SMTP ${MAILMESH_SMTP:-127.0.0.1:2525}; logs in $run_dir"
}

stop() {
  for service in "${services[@]}"; do
    local pid_file="$run_dir/$service.pid"
    [ -f "$pid_file" ] || continue
    kill -TERM "$(cat "$pid_file")" 2>/dev/null || true
  done
  for service in "${services[@]}"; do
    local pid_file="$run_dir/$service.pid"
    [ -f "$pid_file" ] || continue
    local pid; pid="$(cat "$pid_file")"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pid_file"
  done
  echo "distributed: stopped"
}

status() {
  for service in "${services[@]}"; do
    local pid_file="$run_dir/$service.pid"
    if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      echo "$service: running (pid $(cat "$pid_file"))"
    else
      echo "$service: stopped"
    fi
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac

#!/usr/bin/env bash
# Runs MailMesh in the distributed mode on one host: PostgreSQL and RabbitMQ on loopback (started by deps.sh),
# the schema migrator, then the five services as separate processes, each with its own bus connection.
#
#   deploy/scripts/run-distributed.sh start      # build (Release), migrate, start; prints the endpoints
#   deploy/scripts/run-distributed.sh stop       # SIGTERM in order (Ingress, Delivery, the rest); each drains, then exits
#   deploy/scripts/run-distributed.sh status
#
# Any MailMesh setting can be passed as an environment variable (Section__Key), e.g.
#   Dns__Servers=127.0.0.1:5353 Delivery__Port=2626 deploy/scripts/run-distributed.sh start
# Environment: MAILMESH_SMTP (127.0.0.1:2525), MAILMESH_HTTP_BASE (8081: ingress 8081, policy 8082, queue 8083,
# dns 8084, delivery 8085, further Delivery replicas 8086..., mailbox 8180), MAILMESH_RUN_DIR (./data/distributed: logs and pid
# files), MAILMESH_NO_BUILD=1, MAILMESH_DELIVERY_REPLICAS (1: how many Delivery processes; they compete for the
# same queue, so throughput to latency-bound destinations grows with them, see docs/scaling.md),
# MAILMESH_STOP_TIMEOUT (40: seconds stop waits for one service to drain and exit before SIGKILL; at least the
# services' ShutdownGracePeriod plus 10 s).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
run_dir="${MAILMESH_RUN_DIR:-$root/data/distributed}"
replicas="${MAILMESH_DELIVERY_REPLICAS:-1}"
[[ "$replicas" =~ ^[1-9][0-9]*$ ]] || { echo "MAILMESH_DELIVERY_REPLICAS must be a positive integer" >&2; exit 64; }

# Instances in start order: "service" or "service-N" for the Nth replica; Ingress last, once the rest are ready.
instances=(policy queue dns delivery)
for n in $(seq 2 "$replicas"); do instances+=("delivery-$n"); done
instances+=(mailbox ingress)

http_port() { # instance -> its HTTP port
  local base="${MAILMESH_HTTP_BASE:-8081}"
  case "$1" in
    ingress) echo $((base)) ;; policy) echo $((base + 1)) ;; queue) echo $((base + 2)) ;; dns) echo $((base + 3)) ;;
    delivery) echo $((base + 4)) ;; delivery-*) echo $((base + 3 + ${1#delivery-})) ;;
    mailbox) echo $((base + 99)) ;;
  esac
}

start() {
  mkdir -p "$run_dir"
  # deps.sh starts the local servers and prints their connection strings; ones already set (the load tool's private
  # database and virtual host) are kept.
  local spool="${ConnectionStrings__Spool-}" rabbit="${ConnectionStrings__RabbitMq-}"
  eval "$("$root/deploy/scripts/deps.sh" | grep '^ConnectionStrings__' | sed 's/^/export "/; s/$/"/')"
  [ -n "$spool" ] && export ConnectionStrings__Spool="$spool"
  [ -n "$rabbit" ] && export ConnectionStrings__RabbitMq="$rabbit"
  if [ "${MAILMESH_NO_BUILD:-0}" != "1" ]; then
    dotnet build "$root/MailMesh.sln" -c Release --nologo -v q -clp:ErrorsOnly
  fi
  local bin="bin/Release/net10.0"
  echo "distributed: migrating the schema"
  dotnet "$root/services/MailMesh.Migrator/$bin/MailMesh.Migrator.dll"

  for instance in "${instances[@]}"; do
    local service="${instance%%-*}"
    local name="MailMesh.${service^}"
    local http="http://127.0.0.1:$(http_port "$instance")"
    if [ -f "$run_dir/$instance.pid" ] && kill -0 "$(cat "$run_dir/$instance.pid")" 2>/dev/null; then
      echo "distributed: $instance already running (pid $(cat "$run_dir/$instance.pid"))"; continue
    fi
    (
      cd "$root/services/$name"
      export Urls="$http"
      # A local test bed: clients on this host may relay (the services' own default is no relay networks).
      export Policy__RelayNetworks="${Policy__RelayNetworks-127.0.0.0/8,::1/128}"
      [ "$service" = ingress ] && export Ingress__Listen="${MAILMESH_SMTP:-127.0.0.1:2525}"
      # POP3 and IMAP on the standalone ports (unprivileged), STLS/STARTTLS with a self-signed certificate.
      [ "$service" = mailbox ] && export Mailbox__Pop3Listen="${MAILMESH_POP3:-127.0.0.1:1110}" \
        Mailbox__ImapListen="${MAILMESH_IMAP:-127.0.0.1:1143}" Mailbox__Tls__SelfSigned=true
      exec dotnet "$bin/$name.dll" >"$run_dir/$instance.log" 2>&1
    ) &
    echo $! >"$run_dir/$instance.pid"
    echo "distributed: $instance pid $! http $http"
  done

  # Ready when every instance's /readyz answers 200 (RabbitMQ and PostgreSQL reachable).
  for instance in "${instances[@]}"; do
    local url="http://127.0.0.1:$(http_port "$instance")/readyz"
    for _ in $(seq 1 120); do
      if curl -fsS "$url" >/dev/null 2>&1; then break; fi
      if ! kill -0 "$(cat "$run_dir/$instance.pid")" 2>/dev/null; then
        echo "distributed: $instance exited; last log lines:" >&2; tail -n 20 "$run_dir/$instance.log" >&2; exit 1
      fi
      sleep 0.5
    done
    curl -fsS "$url" >/dev/null || { echo "distributed: $instance not ready at $url" >&2; exit 1; }
  done
  echo "distributed: ready ($replicas Delivery). SMTP ${MAILMESH_SMTP:-127.0.0.1:2525}; logs in $run_dir"
}

# SIGTERM the instances whose pid files match the patterns, then wait for them (SIGKILL after MAILMESH_STOP_TIMEOUT).
stop_group() {
  local pids=() files=() pattern file
  for pattern in "$@"; do
    for file in "$run_dir"/$pattern.pid; do
      [ -f "$file" ] || continue
      files+=("$file"); pids+=("$(cat "$file")")
      kill -TERM "$(cat "$file")" 2>/dev/null || true
    done
  done
  local limit=$(( ${MAILMESH_STOP_TIMEOUT:-40} * 2 )) i pid
  for i in "${!pids[@]}"; do
    pid="${pids[$i]}"
    for _ in $(seq 1 "$limit"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "distributed: $(basename "${files[$i]}" .pid) did not exit in time; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "${files[$i]}"
  done
}

stop() {
  # Graceful, front to back: Ingress first (it stops listening and finishes its open transactions, which still need
  # Policy and the bus), then Delivery (finishes its SMTP transactions, which report to Queue), then the rest.
  stop_group ingress
  stop_group "delivery" "delivery-*" mailbox
  stop_group queue dns policy
  echo "distributed: stopped"
}

status() {
  local file
  for file in "$run_dir"/*.pid; do
    [ -f "$file" ] || continue
    local instance; instance="$(basename "$file" .pid)"
    if kill -0 "$(cat "$file")" 2>/dev/null; then
      echo "$instance: running (pid $(cat "$file"))"
    else
      echo "$instance: stopped"
    fi
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac

#!/usr/bin/env bash
# The baseline for MailMesh's load figures: Postfix relaying the same load on the same machine, all on loopback.
#   smtp-source (20 connections, 10 KB messages) -> Postfix (127.0.0.1:25) -> sink on 127.0.0.1:$SINK_PORT
# Reports smtp-source's wall time (accept side) and, through the MailMesh load tool as client and counting sink,
# the same accepted/delivered figures the tool reports for MailMesh.
#
#   tools/bench/postfix-relay.sh [messages=2000] [connections=20] [size=10240]
#
# It reconfigures this machine's Postfix (main.cf is backed up to main.cf.mailmesh-bak and restored at exit).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
messages="${1:-2000}" connections="${2:-20}" size="${3:-10240}"
sink_port=2626

command -v postfix >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null; }
cp /etc/postfix/main.cf /etc/postfix/main.cf.mailmesh-bak
restore() { postfix stop >/dev/null 2>&1 || true; cp /etc/postfix/main.cf.mailmesh-bak /etc/postfix/main.cf; }
trap restore EXIT

postconf -e "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8" \
  "mydestination =" "relayhost = [127.0.0.1]:$sink_port" "myhostname = bench.localdomain" \
  "smtpd_relay_restrictions = permit_mynetworks, reject" "default_process_limit = 200" \
  "smtp_destination_concurrency_limit = 20" "default_destination_concurrency_limit = 20" \
  "message_size_limit = 52428800" "maillog_file = /var/log/postfix.log" "smtputf8_enable = no"
postfix stop >/dev/null 2>&1 || true
postfix start >/dev/null 2>&1
sleep 1

echo "== smtp-source -> Postfix -> smtp-sink: $messages x $size bytes over $connections connections"
smtp-sink -u postfix 127.0.0.1:$sink_port 256 & sink=$!
sleep 0.5
start=$(date +%s.%N)
smtp-source -s "$connections" -l "$size" -m "$messages" -f load@sender.test -t user@load.test 127.0.0.1:25
end=$(date +%s.%N)
echo "smtp-source: accepted $messages in $(echo "$end - $start" | bc) s = $(echo "scale=1; $messages / ($end - $start)" | bc) msg/s"
# Let Postfix drain into smtp-sink, then stop it.
for _ in $(seq 1 600); do [ -z "$(postqueue -j 2>/dev/null | head -c1)" ] && break; sleep 0.2; done
end2=$(date +%s.%N)
echo "postfix drained its queue $(echo "$end2 - $start" | bc) s after the first message = $(echo "scale=1; $messages / ($end2 - $start)" | bc) msg/s end to end"
kill $sink 2>/dev/null || true; wait $sink 2>/dev/null || true

echo
echo "== MailMesh load tool -> Postfix -> load tool's counting sink (same client and sink as the MailMesh figures)"
dotnet run --project "$root/tools/MailMesh.LoadTool" -c Release -- \
  --target 127.0.0.1:25 --sink-port $sink_port --messages "$messages" --connections "$connections" --size "$size"

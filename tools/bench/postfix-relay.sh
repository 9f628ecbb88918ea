#!/usr/bin/env bash
# The baseline for MailMesh's load figures: Postfix relaying the same load on the same machine, all on loopback.
#   smtp-source (20 connections, 10 KB messages) -> a private Postfix instance -> smtp-sink
# The load tool does the work (tools/MailMesh.LoadTool/README.md, --target postfix): it makes the Postfix instance with
# postmulti as the interop tests do (the machine's own Postfix and /etc/postfix/main.cf are left alone), Postfix's
# defaults otherwise, relayhost = the sink; it prints accepted and end-to-end msg/s and CPU seconds per 1,000 messages,
# and removes the instance at the end. To compare MailMesh in the same run, use the load tool's --compare-postfix.
#
#   tools/bench/postfix-relay.sh [messages=3000] [connections=20] [size=10240] [extra load tool options...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
messages="${1:-3000}" connections="${2:-20}" size="${3:-10240}"
shift $(( $# < 3 ? $# : 3 ))
tool="$root/tools/MailMesh.LoadTool/bin/Release/net10.0/MailMesh.LoadTool.dll"
[ -f "$tool" ] || dotnet build -c Release "$root/tools/MailMesh.LoadTool" -v q -clp:ErrorsOnly
exec dotnet "$tool" --target postfix --smtp-source --sink smtp-sink \
  --messages "$messages" --connections "$connections" --size "$size" "$@"

#!/usr/bin/env bash
# The whole MailMesh test suite, from a fresh machine:
#   1. installs (Debian packages) and starts PostgreSQL and RabbitMQ on loopback, plus the interop peers
#      (swaks with its TLS and AUTH modules, Postfix's smtp-source/smtp-sink/postmulti, python3), and smoke-tests
#      each; anything missing stops the run here with one line naming it, before anything is built,
#   2. restores, checks formatting, builds with warnings as errors,
#   3. runs every test project (unit, functional, integration, end-to-end) against those real servers,
#   4. lints, renders and validates the Helm chart and the compose file,
# and closes with one line "N passed, N failed, N skipped".
#
#   ./test.sh                  # everything
#   ./test.sh --filter Smtp    # only test projects whose name contains "Smtp" (skips the deploy checks)
set -euo pipefail
cd "$(dirname "$0")"

filter=""
if [ "${1:-}" = "--filter" ]; then filter="${2:?--filter needs a value}"; fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export MSBUILDDISABLENODEREUSE=1

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "dependencies: PostgreSQL, RabbitMQ, swaks, Postfix, python3 (installed when missing, then smoke-tested)"
command -v dotnet >/dev/null 2>&1 || { echo "test.sh: MISSING the .NET SDK (dotnet, see global.json); no tests were run" >&2; exit 1; }
MAILMESH_TEST_TOOLS=1 deploy/scripts/deps.sh ||
  { echo "test.sh: a dependency is missing (the line above names it); no tests were run" >&2; exit 1; }
export MAILMESH_TEST_POSTGRES="Host=127.0.0.1;Port=${MAILMESH_PG_PORT:-5432};Username=mailmesh;Password=mailmesh;Database=mailmesh"
export MAILMESH_TEST_RABBITMQ="amqp://guest:guest@127.0.0.1:${MAILMESH_AMQP_PORT:-5672}/"

step "solution: every project is in MailMesh.sln"
unlisted="$(comm -23 <(find services tests tools -name '*.csproj' -not -path '*/bin/*' -not -path '*/obj/*' | sort) \
  <(dotnet sln MailMesh.sln list | tail -n +3 | tr '\\' '/' | sort))"
[ -z "$unlisted" ] || { echo "test.sh: not in MailMesh.sln (dotnet sln MailMesh.sln add ...): $unlisted" >&2; exit 1; }

step "restore"
dotnet restore MailMesh.sln --nologo -v q

step "format check (dotnet format whitespace --verify-no-changes; code style is enforced by the build)"
dotnet format whitespace MailMesh.sln --verify-no-changes -v q

step "build (warnings are errors)"
dotnet build MailMesh.sln --no-restore -c Release --nologo -v q -clp:ErrorsOnly

results="$(mktemp -d)"
passed=0 failed=0 skipped=0 status=0

step "tests"
mapfile -t projects < <(find tests -name '*Tests.csproj' | sort)
for project in "${projects[@]}"; do
  name="$(basename "$project" .csproj)"
  if [ -n "$filter" ] && [[ "$name" != *"$filter"* ]]; then continue; fi
  echo "--- $name"
  log="$results/$name.log"
  if ! dotnet test "$project" --no-build -c Release --nologo \
      --blame-hang-timeout 5m --logger "console;verbosity=normal" >"$log" 2>&1; then
    status=1
    # Each failure's whole block: name, the full assertion message, the first frames of its stack trace.
    awk '/^  Failed /{p=1; n=0} p&&/^  Stack Trace:/{st=1} p{print; if (st && ++n > 12) {p=0; st=0}}' "$log" | head -n 200 || true
  fi
  # vstest's closing block: "Total tests: 42" then "     Passed: 41", "     Failed: 1", "    Skipped: 0".
  if ! grep -qE '^Total tests: [0-9]+' "$log"; then
    echo "    no test summary (see below)"; tail -n 30 "$log"; status=1; failed=$((failed + 1)); continue
  fi
  count() { grep -E "^\s+$1: [0-9]+\s*$" "$log" | tail -n1 | grep -oE '[0-9]+' || echo 0; }
  p=$(count Passed) f=$(count Failed) s=$(count Skipped)
  echo "    $p passed, $f failed, $s skipped"
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done

if [ -z "$filter" ]; then
  step "deployment checks: helm lint/template, Kubernetes schemas, compose schema"
  if deploy/scripts/check-deploy.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
fi

echo
echo "Total: $passed passed, $failed failed, $skipped skipped"
exit $status

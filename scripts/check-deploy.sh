#!/usr/bin/env bash
# Validates deploy/ offline: Kubernetes manifests against the Kubernetes JSON schemas bundled in the PyPI package
# kubernetes-validate (strict: unknown fields are errors), the ConfigMap's node configurations as JSON with the
# fields FacetCluster reads, the kustomization's resource list, the Grafana dashboard's JSON and PromQL metric names
# against the metrics the nodes export, the systemd units with systemd-analyze when it is available, and the
# Containerfile's stages. Installs what it needs into .venv-deploy (PyPI only). Exit 1 on any problem.
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION="${K8S_VERSION:-1.30.0}"
VENV=.venv-deploy
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  rm -rf "$VENV"
  if python3 -m venv "$VENV" 2>/dev/null; then
    "$VENV/bin/pip" install -q "kubernetes-validate==1.37.0" "pyyaml==6.0.3"
  else   # no python3-venv: a plain target directory
    python3 -m pip install -q --target "$VENV/lib" "kubernetes-validate==1.37.0" "pyyaml==6.0.3"
    mkdir -p "$VENV/bin"
    printf '#!/bin/sh\nPYTHONPATH="%s/lib" exec python3 -m kubernetes_validate "$@"\n' "$PWD/$VENV" > "$VENV/bin/kubernetes-validate"
    printf '#!/bin/sh\nPYTHONPATH="%s/lib" exec python3 "$@"\n' "$PWD/$VENV" > "$VENV/bin/python"
    chmod +x "$VENV/bin/kubernetes-validate" "$VENV/bin/python"
  fi
fi
fail=0
echo "[deploy] kubernetes-validate (Kubernetes $K8S_VERSION, strict)"
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] && continue
  "$VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" "$f" || fail=1
done
"$VENV/bin/python" scripts/check_deploy.py || fail=1
if command -v systemd-analyze >/dev/null 2>&1; then
  echo "[deploy] systemd-analyze verify"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  # verify resolves ExecStart's binary: point the units at a stand-in executable in a scratch root.
  mkdir -p "$tmp/bin"; printf '#!/bin/sh\n' > "$tmp/bin/facet"; chmod +x "$tmp/bin/facet"
  for u in deploy/systemd/*.service; do
    name=$(basename "$u")
    sed "s#/opt/facet/bin/facet#$tmp/bin/facet#" "$u" > "$tmp/${name/@/@x}"
    case "$name" in *@.service) unit="$tmp/${name/@/@x}"; mv "$unit" "$tmp/${name/@.service/@test.service}"; unit="$tmp/${name/@.service/@test.service}";; *) unit="$tmp/$name";; esac
    out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$unit" 2>&1 | grep -v -E "Cannot add dependency job|Failed to load|No such file|bus|Unit .*not found|Failed to create|Access denied" || true)
    if [ -n "$out" ]; then echo "$name: $out"; fail=1; else echo "  $name ok"; fi
  done
fi
[ "$fail" = 0 ] && echo "[deploy] all checks passed" || { echo "[deploy] FAILED"; exit 1; }

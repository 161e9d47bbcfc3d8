#!/usr/bin/env bash
# Builds Helm v3 from its published Go module, pinned by the consumer module e2e/go/helm, for the deploy tests'
# `helm template` (e2e/tests/test_deploy_install.py). `make test` runs it (cached); run alone, the test uses a helm
# found through TEST_ASSET_HELM or this script's cache, else PYROCLAST_BUILD_HELM=1 makes it run this script.
# Output: $PYROCLAST_RIG_CACHE/helm/<stamp>/helm, reused while go.mod/go.sum/toolchain are unchanged (about 4 min
# on 2 busy cores the first time, most of Kubernetes' packages coming from the rig's build cache). Prints the
# binary's path on the last line of stdout. TEST_ASSET_HELM, when it names an executable, is used as is.
set -euo pipefail

if [ -n "${TEST_ASSET_HELM:-}" ] && [ -x "$TEST_ASSET_HELM" ]; then
  echo "$TEST_ASSET_HELM"
  exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
mod="$here/go/helm"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -modcacherw -mod=readonly"
cache=${PYROCLAST_RIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyroclast-rig}
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gobuild"

stamp=$( (cat "$mod/go.mod" "$mod/go.sum"; go env GOVERSION) | sha256sum | cut -c1-16)
out="$cache/helm/$stamp"
mkdir -p "$cache/helm"
exec 9>"$cache/helm.lock"
flock 9
if [ -x "$out/helm" ]; then echo "$out/helm"; exit 0; fi

t0=$SECONDS
cd "$mod"
version=$(go list -m -f '{{.Version}}' helm.sh/helm/v3)
k8s=$(go list -m -f '{{.Version}}' k8s.io/client-go)  # v0.MINOR.PATCH: helm's default Kubernetes version
k8s_minor=$(echo "$k8s" | cut -d. -f2)
echo "[build] helm $version (client-go $k8s), $(go env GOVERSION), cache $cache" >&2
go mod download >&2
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags="$ldflags -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done
mkdir -p "$out.tmp"
go build -p 2 -ldflags "$ldflags" -o "$out.tmp/helm" helm.sh/helm/v3/cmd/helm >&2
mv "$out.tmp" "$out"
echo "[build] helm in $((SECONDS - t0)) s: $out/helm" >&2
# Keep only the newest build.
for old in "$cache"/helm/*; do [ "$old" = "$out" ] || rm -rf "$old"; done
echo "$out/helm"

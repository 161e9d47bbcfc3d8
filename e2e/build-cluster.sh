#!/usr/bin/env bash
# Builds the local test cluster's binaries from published Go modules (consumer modules under e2e/go/).
# Output: $PYROCLAST_RIG_CACHE/bin/<stamp>/ (outside the clone), reused while the consumer modules and toolchain
# are unchanged; builds unused for a week are dropped.
# Prints the bin directory on the last line of stdout. Honours KUBEBUILDER_ASSETS: when it already holds every
# binary, nothing is built.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
components=(k8s etcd kwok volcano coredns)
names=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok vc-scheduler vc-controller-manager
  coredns)

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  missing=0
  for n in "${names[@]}"; do [ -x "$KUBEBUILDER_ASSETS/$n" ] || missing=1; done
  if [ "$missing" = 0 ]; then echo "$KUBEBUILDER_ASSETS"; exit 0; fi
  echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks some binaries; building the rest into the rig cache" >&2
fi

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -modcacherw -mod=readonly"
cache=${PYROCLAST_RIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyroclast-rig}
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gobuild"
mkdir -p "$cache/bin"

kver=$(awk '$1 == "k8s.io/kubernetes" {sub(/^v/, "", $2); print $2; exit}' "$here/go/k8s/go.mod")
minor=$(echo "$kver" | cut -d. -f2)
ldflags="-s -w"
for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags="$ldflags -X $p.gitVersion=v$kver -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldflags="$ldflags -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

# The stamp covers each consumer module (go.mod, go.sum and its own entry point, if any) and the toolchain.
stamp=$( (for c in "${components[@]}"; do
            cat "$here/go/$c/go.mod" "$here/go/$c/go.sum"
            find "$here/go/$c" -maxdepth 1 -name '*.go' -print0 | sort -z | xargs -0r cat
          done
          go env GOVERSION; echo "$ldflags") | sha256sum | cut -c1-16)
bin="$cache/bin/$stamp"

exec 9>"$cache/build.lock"
flock 9
if [ -f "$bin/.complete" ]; then touch "$bin/.complete"; echo "$bin"; exit 0; fi
mkdir -p "$bin"

step() {  # step NAME DIR -- go build args...
  local name=$1 dir=$2; shift 3
  local t0=$SECONDS
  echo "[build] $name ..." >&2
  (cd "$here/go/$dir" && go build -p 2 "$@") >&2
  echo "[build] $name done in $((SECONDS - t0)) s" >&2
}

total0=$SECONDS
echo "[build] $(go env GOVERSION), cache $cache, k8s v$kver" >&2
(for c in "${components[@]}"; do (cd "$here/go/$c" && go mod download); done) >&2
echo "[build] module download done in $((SECONDS - total0)) s" >&2
step "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl" k8s -- -tags selinux,notest \
  -ldflags "$ldflags" -o "$bin/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
step etcd etcd -- -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
step kwok kwok -- -ldflags "-s -w" -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok
step "vc-scheduler, vc-controller-manager" volcano -- -ldflags "-s -w" -o "$bin/" \
  volcano.sh/volcano/cmd/scheduler volcano.sh/volcano/cmd/controller-manager
step coredns coredns -- -ldflags "-s -w" -o "$bin/coredns" .
mv "$bin/scheduler" "$bin/vc-scheduler"
mv "$bin/controller-manager" "$bin/vc-controller-manager"
touch "$bin/.complete"
echo "[build] all binaries in $((SECONDS - total0)) s: $bin" >&2
# Drop builds no checkout has used for a week (each use touches .complete; several checkouts of different
# versions share the cache) and incomplete ones (an interrupted build; the lock is ours, so none is running).
for old in "$cache"/bin/*; do
  [ "$old" = "$bin" ] && continue
  if [ ! -f "$old/.complete" ] || [ -n "$(find "$old/.complete" -mtime +7)" ]; then rm -rf "$old"; fi
done
echo "$bin"

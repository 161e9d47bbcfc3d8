#!/usr/bin/env bash
# Builds Kubeflow training-operator v1 (the benchmark's reference operator): our entry point
# e2e/go/training-operator/main.go (loopback-only listeners, no webhook server) around upstream's PyTorchJob
# controller from its published Go module, pinned by that module's go.mod. Benchmarks only: `make test` never calls
# this. Output: $PYROCLAST_RIG_CACHE/training-operator/<stamp>/training-operator, reused while main.go, go.mod, go.sum
# and the toolchain are unchanged. Prints the binary's path on the last line of stdout. TEST_ASSET_TRAINING_OPERATOR,
# when it names an executable, is used as is.
set -euo pipefail

if [ -n "${TEST_ASSET_TRAINING_OPERATOR:-}" ] && [ -x "$TEST_ASSET_TRAINING_OPERATOR" ]; then
  echo "$TEST_ASSET_TRAINING_OPERATOR"
  exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
mod="$here/go/training-operator"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -modcacherw -mod=readonly"
cache=${PYROCLAST_RIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyroclast-rig}
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gobuild"
stamp=$( (cat "$mod/main.go" "$mod/go.mod" "$mod/go.sum"; go env GOVERSION) | sha256sum | cut -c1-16)
out="$cache/training-operator/$stamp"
mkdir -p "$cache/training-operator"
exec 9>"$cache/training-operator.lock"
flock 9
if [ -x "$out/training-operator" ]; then echo "$out/training-operator"; exit 0; fi

t0=$SECONDS
version=$(cd "$mod" && go list -m -f '{{.Version}}' github.com/kubeflow/training-operator)
echo "[build] training-operator $version, $(go env GOVERSION), cache $cache" >&2
(cd "$mod" && go mod download && go build -p 2 -ldflags "-s -w" -o "$out/training-operator.tmp" .) >&2
mv "$out/training-operator.tmp" "$out/training-operator"
echo "[build] training-operator done in $((SECONDS - t0)) s: $out" >&2
for old in "$cache"/training-operator/*; do [ "$old" = "$out" ] || rm -rf "$old"; done
echo "$out/training-operator"

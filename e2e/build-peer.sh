#!/usr/bin/env bash
# Builds one of the benchmark's Go peers: our entry point e2e/go/<name>/main.go (loopback-only listeners, no webhook
# server) around upstream's controllers from their published Go module <module>, pinned by that directory's
# go.mod. Usage: build-peer.sh <name> <module>. Benchmarks only: `make test` never calls this, and the rig's own
# build (e2e/build-cluster.sh) does not depend on it. Output: $PYROCLAST_RIG_CACHE/<name>/<stamp>/<name>, reused
# while main.go, go.mod, go.sum and the toolchain are unchanged. Prints the binary's path on the last line of
# stdout. TEST_ASSET_<NAME> (upper case, '-' as '_'), when it names an executable, is used as is.
set -euo pipefail

name=${1:?usage: build-peer.sh <name> <module>}
module=${2:?usage: build-peer.sh <name> <module>}
asset_var="TEST_ASSET_$(tr 'a-z-' 'A-Z_' <<<"$name")"
if [ -n "${!asset_var:-}" ] && [ -x "${!asset_var}" ]; then
  echo "${!asset_var}"
  exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
mod="$here/go/$name"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -modcacherw -mod=readonly"
cache=${PYROCLAST_RIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyroclast-rig}
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gobuild"
stamp=$( (cat "$mod/main.go" "$mod/go.mod" "$mod/go.sum"; go env GOVERSION) | sha256sum | cut -c1-16)
out="$cache/$name/$stamp"
mkdir -p "$cache/$name"
exec 9>"$cache/$name.lock"
flock 9
if [ -x "$out/$name" ]; then echo "$out/$name"; exit 0; fi

t0=$SECONDS
version=$(cd "$mod" && go list -m -f '{{.Version}}' "$module")
echo "[build] $name $version, $(go env GOVERSION), cache $cache" >&2
(cd "$mod" && go mod download && go build -p 2 -ldflags "-s -w" -o "$out/$name.tmp" .) >&2
mv "$out/$name.tmp" "$out/$name"
echo "[build] $name done in $((SECONDS - t0)) s: $out" >&2
for old in "$cache/$name"/*; do [ "$old" = "$out" ] || rm -rf "$old"; done
echo "$out/$name"

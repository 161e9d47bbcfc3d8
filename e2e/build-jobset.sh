#!/usr/bin/env bash
# Builds JobSet's controllers (the benchmark's JobSet peer): our entry point e2e/go/jobset/main.go around upstream's
# JobSet and pod controllers (see build-peer.sh). Prints the binary's path on the last line of stdout;
# TEST_ASSET_JOBSET, when it names an executable, is used as is.
exec bash "$(dirname "$0")/build-peer.sh" jobset sigs.k8s.io/jobset

#!/usr/bin/env bash
# Builds Kubeflow training-operator v1 (the benchmark's reference operator): our entry point
# e2e/go/training-operator/main.go around upstream's PyTorchJob controller (see build-peer.sh). Prints the binary's
# path on the last line of stdout; TEST_ASSET_TRAINING_OPERATOR, when it names an executable, is used as is.
exec bash "$(dirname "$0")/build-peer.sh" training-operator github.com/kubeflow/training-operator

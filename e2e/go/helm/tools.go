//go:build tools

// Package tools pins Helm v3, built by e2e/build-helm.sh for the deploy tests' `helm template`.
package tools

import _ "helm.sh/helm/v3/cmd/helm"

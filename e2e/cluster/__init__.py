"""Local Kubernetes + Volcano cluster for end-to-end tests (an envtest-style rig with kwok nodes).

`Cluster` runs etcd, kube-apiserver, kube-controller-manager, CoreDNS (cluster DNS, see `dns`), kwok,
vc-controller-manager and vc-scheduler as local processes, every listener on 127.0.0.1, and writes an admin
kubeconfig (client certificate in `system:masters`). Where the machine allows it (root), the rig also has a
pod network (`network`): CoreDNS then also answers on its host address, port 53, and a forwarder there relays
to the apiserver (`Cluster.pod_host`, `Cluster.pod_apiserver_port`), the only listeners off loopback.
Binaries are looked up per name in `TEST_ASSET_<NAME>`, `$KUBEBUILDER_ASSETS/<name>`,
`$PYROCLAST_RIG_BIN/<name>`, `/usr/local/kubebuilder/bin/<name>` (build them with `e2e/build-cluster.sh`).
Volcano CRDs and kwok stages are read at run time from the Go module cache pinned by `e2e/go/*/go.mod`.

Command line: `python -m e2e.cluster run` (what `make run` calls) and `python -m e2e.cluster up`.

kwok stages in force (upstream ones come from the kwok module's `kustomize/stage`):

* upstream: node-initialize, node-heartbeat-with-lease, pod-ready (scheduled pods become Running at once),
  pod-delete (a deleted pod is removed at once: no grace period is simulated), pod-container-running-failed
  (label `pod-container-running-failed.stage.kwok.x-k8s.io: "true"`), node-not-ready (node label
  `node-not-ready.stage.kwok.x-k8s.io: "true"`). `pod-complete` is deliberately left out, so a Running pod
  stays Running until a test says otherwise.
* project (`e2e/cluster/stages/`), keyed on pod annotations, for Running pods not being deleted:

  - `pyroclast.dev/test-succeed-after: "<delay>"` -> phase Succeeded, every container terminated with
    exitCode 0 (reason Completed) after the delay.
  - `pyroclast.dev/test-fail-after: "<delay>"` plus optional `pyroclast.dev/test-exit-code: "<n>"` (default
    1) -> phase Failed, every container terminated with that exitCode (reason Error) after the delay.
  - `pyroclast.dev/test-evict: "true"` as a label or an annotation -> kubelet-style eviction at once: phase
    Failed, pod reason `Evicted`, condition `DisruptionTarget=True` (reason TerminationByKubelet),
    containers terminated with exitCode 137.
  - `pyroclast.dev/test-report-after: "<delay>"` plus `pyroclast.dev/test-termination-message: "<text>"`
    and optional `pyroclast.dev/test-exit-code` (default 1) -> the pod ends after the delay (Failed, or
    Succeeded for exit code 0) and the `trainer` container's termination message is `<text>`: a workload
    report as `workloads.train` writes it. Annotate a running pod to kill it mid-run with a report.

  `<delay>` must be a Go duration (`"0s"`, `"1500ms"`, `"2m"`) or an RFC3339 time. A bare number such as
  `"5"` does not parse and silently means "now" (kwok falls back to the stage's 0 ms default). An RFC3339
  time is absolute, so it is immune to kwok re-evaluating the pod when other writers change it.
  Put at most one outcome annotation on a pod (kwok picks among matching stages at random by weight).

Watch cache: on, as in production (`Cluster(watch_cache=False)` turns it off); see `cluster.WATCH_CACHE_NOTE`.

Fake pod IPs come from 10.244.0.0/16 (kwok `--cidr`); never connect to them. Services use 10.96.0.0/16.
"""

from e2e.cluster.api import Api, ApiError, WaitTimeoutError, wait_for
from e2e.cluster.binaries import BinaryNotFoundError
from e2e.cluster.cluster import Cluster, KubectlError, install_signal_handlers
from e2e.cluster.modules import ModuleNotFoundInCacheError
from e2e.cluster.process import ComponentStartError, PortInUseError

__all__ = [
    "Api",
    "ApiError",
    "BinaryNotFoundError",
    "Cluster",
    "ComponentStartError",
    "KubectlError",
    "ModuleNotFoundInCacheError",
    "PortInUseError",
    "WaitTimeoutError",
    "install_signal_handlers",
    "wait_for",
]

"""JobSet (the engine under Kubeflow Trainer v2) as a benchmark peer: build, CRD, start, JobSet manifests.

The binary comes from e2e/build-jobset.sh: upstream's JobSet and pod controllers (its published Go module,
pinned by e2e/go/jobset) behind our own main.go, whose listeners are loopback only and which runs no webhook
server; the CRD is read from the Go module cache. Kubernetes' Job controller makes the pods, so the rig runs
it on request (``Cluster(kube_jobs=True)``). Without the defaulting webhook, the manifest spells out what it
would fill in (success and startup policy, DNS hostnames, Indexed completion).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from controller.runtime.objects import JsonObject
from controller.runtime.resource import Resource
from e2e.bench import peer
from e2e.bench.vcjob import worker_container
from e2e.cluster import Cluster
from e2e.cluster.modules import module_dir
from e2e.cluster.pool import NodePool

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "e2e" / "build-jobset.sh"
MODULE = ("jobset", "sigs.k8s.io/jobset")
JOBSETS = Resource("jobset.x-k8s.io", "v1alpha2", "JobSet", "jobsets")
TUNED = ("--controller-threads=16", "--kube-api-qps=200", "--kube-api-burst=400")


def build() -> Path:
    """Build (or reuse) the binary; raises PeerUnavailable with the build's error text."""
    return peer.build(BUILD_SCRIPT)


def version() -> str:
    """The module version e2e/go/jobset pins (from the module directory's name)."""
    return module_dir(*MODULE).name.rpartition("@")[2]


def install(cluster: Cluster) -> None:
    """The JobSet CRD (from the module cache)."""
    crd = module_dir(*MODULE) / "config" / "components" / "crd" / "bases" / "jobset.x-k8s.io_jobsets.yaml"
    peer.install_crd(cluster, crd, "jobsets.jobset.x-k8s.io")


def start(cluster: Cluster, binary: Path, flags: tuple[str, ...], log_path: Path) -> subprocess.Popen[bytes]:
    """Start it (metrics and probes on loopback) and wait until /readyz answers."""
    return peer.start(cluster, "jobset", binary, flags, log_path)


def jobset(name: str, pool: NodePool, *, workers: int) -> JsonObject:
    """One JobSet of `workers` one-pod Jobs (replicas of one replicatedJob), pods shaped like the bench's
    TorchJob workers (1 CPU, 1Gi) and scheduled by Volcano. JobSet itself has no gang: Volcano's
    pg-controller gives each Job's pod its own PodGroup."""
    pod = {
        "restartPolicy": "Never",
        "schedulerName": "volcano",
        "nodeSelector": pool.node_selector,
        "containers": [worker_container()],
    }
    job = {
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 0,
        "completionMode": "Indexed",
        "template": {"spec": pod},
    }
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "successPolicy": {"operator": "All"},
            "startupPolicy": {"startupPolicyOrder": "AnyOrder"},
            "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
            "replicatedJobs": [{"name": "worker", "replicas": workers, "template": {"spec": job}}],
        },
    }

"""Kubeflow training-operator v1 (the reference operator) on the rig: build, CRD, start, PyTorchJob manifests.

The binary comes from e2e/build-training-operator.sh: upstream's PyTorchJob controller (its published Go
module, pinned by e2e/go/training-operator) behind our own main.go, whose listeners are loopback only and
which runs no webhook server; the PyTorchJob CRD is read from the Go module cache at run time.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from controller.runtime.objects import JsonObject
from e2e.bench import peer
from e2e.bench.peer import PeerUnavailable
from e2e.cluster import Cluster
from e2e.cluster.modules import module_dir
from e2e.cluster.pool import NodePool

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "e2e" / "build-training-operator.sh"
MODULE = ("training-operator", "github.com/kubeflow/training-operator")
TUNED = ("--controller-threads=16", "--kube-api-qps=200", "--kube-api-burst=400")
DEFAULTS: tuple[str, ...] = ()  # 1 thread, QPS 20, burst 30


KubeflowUnavailable = PeerUnavailable


def build() -> Path:
    """Build (or reuse) the binary; raises KubeflowUnavailable with the build's error text."""
    return peer.build(BUILD_SCRIPT)


def version() -> str:
    """The module version e2e/go/training-operator pins (from the module directory's name)."""
    return module_dir(*MODULE).name.rpartition("@")[2]


def install(cluster: Cluster) -> None:
    """The PyTorchJob CRD (from the module cache)."""
    crd = module_dir(*MODULE) / "manifests" / "base" / "crds" / "kubeflow.org_pytorchjobs.yaml"
    peer.install_crd(cluster, crd, "pytorchjobs.kubeflow.org")


def start(cluster: Cluster, binary: Path, flags: tuple[str, ...], log_path: Path) -> subprocess.Popen[bytes]:
    """Start it (volcano gang scheduling; metrics and probes on loopback) and wait until /readyz answers."""
    return peer.start(
        cluster, "training-operator", binary, ("--gang-scheduler-name=volcano", *flags), log_path
    )


def pytorchjob(name: str, pool: NodePool, *, workers: int) -> JsonObject:
    """A PyTorchJob of `workers` Worker replicas shaped like the bench's TorchJob workers (1 CPU, 1Gi)."""
    container = {
        "name": "pytorch",  # the container name v1 requires
        "image": "example.invalid/train:1",
        "command": ["python", "-m", "train"],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
    }
    worker = {
        "replicas": workers,
        "restartPolicy": "Never",
        "template": {"spec": {"nodeSelector": pool.node_selector, "containers": [container]}},
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": {"Worker": worker}, "runPolicy": {"cleanPodPolicy": "None"}},
    }

"""Kubeflow training-operator v1 (the reference operator) on the rig: build, CRD, start, PyTorchJob manifests.

The binary comes from e2e/build-training-operator.sh: upstream's PyTorchJob controller (its published Go
module, pinned by e2e/go/training-operator) behind our own main.go, whose listeners are loopback only and
which runs no webhook server; the PyTorchJob CRD is read from the Go module cache at run time.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from controller.runtime.objects import JsonObject
from e2e.cluster import Cluster
from e2e.cluster.api import wait_for
from e2e.cluster.modules import module_dir
from e2e.cluster.pool import NodePool
from e2e.cluster.ports import HOST, free_port

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "e2e" / "build-training-operator.sh"
MODULE = ("training-operator", "github.com/kubeflow/training-operator")
TUNED = ("--controller-threads=16", "--kube-api-qps=200", "--kube-api-burst=400")
DEFAULTS: tuple[str, ...] = ()  # 1 thread, QPS 20, burst 30


class KubeflowUnavailable(RuntimeError):
    """The training-operator could not be built or started; the message says why."""


def build() -> Path:
    """Build (or reuse) the binary; raises KubeflowUnavailable with the build's error text."""
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise KubeflowUnavailable(f"{BUILD_SCRIPT.name} failed (exit {proc.returncode}):\n{tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


def version() -> str:
    """The module version e2e/go/training-operator pins (from the module directory's name)."""
    return module_dir(*MODULE).name.rpartition("@")[2]


def install(cluster: Cluster) -> None:
    """The PyTorchJob CRD (from the module cache)."""
    crd = module_dir(*MODULE) / "manifests" / "base" / "crds" / "kubeflow.org_pytorchjobs.yaml"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    wait_for("PyTorchJob CRD Established", lambda: _established(cluster, "pytorchjobs.kubeflow.org"), 60)


def _established(cluster: Cluster, name: str) -> bool:
    crd = cluster.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
    conditions: list[JsonObject] = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def start(cluster: Cluster, binary: Path, flags: tuple[str, ...], log_path: Path) -> subprocess.Popen[bytes]:
    """Start it (volcano gang scheduling; metrics and probes on loopback) and wait until /readyz answers."""
    health = free_port()
    argv = [
        str(binary), f"--kubeconfig={cluster.kubeconfig}", "--gang-scheduler-name=volcano",
        f"--metrics-bind-address={HOST}:{free_port()}", f"--health-probe-bind-address={HOST}:{health}",
        *flags,
    ]  # fmt: skip
    with log_path.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, health, log_path)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KubeflowUnavailable(f"training-operator exited {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise KubeflowUnavailable(f"training-operator not ready in 90 s; see {log_path}")


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

"""Kubeflow training-operator v1 (the reference operator) on the rig: build, CRD, start, PyTorchJob manifests.

The binary comes from e2e/build-training-operator.sh (its published Go module, pinned by
e2e/go/training-operator); the PyTorchJob CRD is read from the Go module cache at run time.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from e2e.cluster import Cluster
from e2e.cluster.api import wait_for
from e2e.cluster.modules import module_dir
from e2e.cluster.pool import NodePool
from e2e.cluster.ports import HOST, free_port

JsonObject = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "e2e" / "build-training-operator.sh"
MODULE = ("training-operator", "github.com/kubeflow/training-operator")
NAMESPACE = "kubeflow"
SECRET = "training-operator-webhook-cert"
CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")
"""Hard-coded in v1.9.4's pkg/cert; the kubelet would mount the Secret there, here the bench copies it."""
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
    """The PyTorchJob CRD (from the module cache), the operator's namespace and its (empty) webhook Secret."""
    crd = module_dir(*MODULE) / "manifests" / "base" / "crds" / "kubeflow.org_pytorchjobs.yaml"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    wait_for("PyTorchJob CRD Established", lambda: _established(cluster, "pytorchjobs.kubeflow.org"), 60)
    cluster.api.create("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}}, exist_ok=True)
    secret = {"metadata": {"name": SECRET, "namespace": NAMESPACE}, "type": "Opaque"}
    cluster.api.create(f"/api/v1/namespaces/{NAMESPACE}/secrets", secret, exist_ok=True)


def _established(cluster: Cluster, name: str) -> bool:
    crd = cluster.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
    conditions: list[JsonObject] = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def start(cluster: Cluster, binary: Path, flags: tuple[str, ...], log_path: Path) -> subprocess.Popen[bytes]:
    """Start it (`--gang-scheduler-name=volcano`, PyTorchJob only) and wait until /readyz answers.

    Its webhook server has no host flag and binds every interface on a free port; nothing calls it (no
    ValidatingWebhookConfiguration is installed)."""
    health = free_port()
    argv = [
        str(binary), f"--kubeconfig={cluster.kubeconfig}", "--enable-scheme=pytorchjob",
        "--gang-scheduler-name=volcano", "--leader-elect=false", "--metrics-bind-address=0",
        f"--health-probe-bind-address={HOST}:{health}", f"--webhook-server-port={free_port()}", *flags,
    ]  # fmt: skip
    env = {**os.environ, "MY_POD_NAMESPACE": NAMESPACE}
    env.pop("TMPDIR", None)  # controller-runtime's webhook server reads os.TempDir()/k8s-webhook-server
    with log_path.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _bridge_certs(cluster, proc, log_path)
        _wait_ready(proc, health, log_path)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def _bridge_certs(cluster: Cluster, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Copy the certificates its rotator writes into the Secret to the directory it waits on."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KubeflowUnavailable(f"training-operator exited {proc.returncode}; see {log_path}")
        data = (cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}") or {}).get("data") or {}
        if data.get("tls.crt") and data.get("tls.key"):
            CERT_DIR.mkdir(parents=True, exist_ok=True)
            for key in ("tls.crt", "tls.key", "ca.crt"):
                if key in data:
                    (CERT_DIR / key).write_bytes(base64.b64decode(data[key]))
            return
        time.sleep(0.3)
    raise KubeflowUnavailable(f"the rotator never filled Secret {NAMESPACE}/{SECRET}; see {log_path}")


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

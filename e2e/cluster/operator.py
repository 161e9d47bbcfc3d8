"""`make run`'s steps after the cluster is up: the TorchJob CRD, the operator as a process, a sample job."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

from api import CRD_NAME
from api.crd import render as render_crd
from e2e.cluster.cluster import Cluster
from e2e.cluster.ports import HOST, free_port
from e2e.cluster.process import Component

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_JOB = REPO_ROOT / "deploy" / "examples" / "torchjob-fixed.yaml"
OPERATOR = "pyroclast-operator"


def install_crd(cluster: Cluster) -> str:
    """Apply the generated TorchJob CRD (idempotent) and wait until it is served; returns its name."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=render_crd())
    deadline = time.monotonic() + 60
    while cluster.kubectl("get", "torchjobs", "-A", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the TorchJob CRD was not served within 60 s")
        time.sleep(0.5)
    print(f"crd: {CRD_NAME}", flush=True)
    return CRD_NAME


def operator_component(cluster: Cluster) -> Component:
    """`pyroclast run` against the cluster, with its metrics and probes on free loopback ports."""
    metrics, health = free_port(), free_port()

    def ready() -> bool:
        with urllib.request.urlopen(f"http://{HOST}:{health}/readyz", timeout=1) as response:
            return bool(response.status == 200)

    component = Component(
        name=OPERATOR,
        argv=[
            sys.executable,
            "-m",
            "pyroclast.cli",
            "run",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--metrics-bind-address",
            f"{HOST}:{metrics}",
            "--health-probe-bind-address",
            f"{HOST}:{health}",
        ],
        log_path=cluster.workdir / "logs" / f"{OPERATOR}.log",
        healthy=ready,
    )
    print(f"operator: metrics http://{HOST}:{metrics}/metrics, log {component.log_path}", flush=True)
    return component


def apply_sample_job(cluster: Cluster, *, timeout: float = 90.0) -> None:
    """Submit the fixed-size example job and wait until its gang is Running."""
    cluster.kubectl("apply", "-f", str(SAMPLE_JOB))
    name = "resnet-fixed"
    deadline = time.monotonic() + timeout
    phase = None
    while time.monotonic() < deadline:
        out = cluster.kubectl("get", "torchjob", name, "-o", "json", check=False)
        if out.returncode == 0:
            phase = (json.loads(out.stdout).get("status") or {}).get("phase")
            if phase == "Running":
                print(cluster.kubectl("get", "torchjobs,podgroups,pods", "-o", "wide").stdout, flush=True)
                return
        time.sleep(1)
    raise RuntimeError(f"sample job {name} is {phase or 'not reported'} after {timeout:.0f} s, not Running")

"""`make run`'s steps after the cluster is up: the TorchJob CRD, the operator as a process, a sample job.

With process nodes (the rig has a pod network) the sample really trains: `deploy/examples/torchjob-cpu.yaml`,
pinned to the process nodes, whose workers post live progress to the operator's endpoint on the pod network's
host address. Without them the fixed-size GPU sample is scheduled onto kwok's fake GPU nodes instead.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from api import CRD_NAME
from api.crd import render_all as render_crd
from e2e.cluster.cluster import Cluster
from e2e.cluster.ports import HOST, free_port
from e2e.cluster.process import Component

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_JOB = REPO_ROOT / "deploy" / "examples" / "torchjob-cpu.yaml"
GPU_SAMPLE_JOB = REPO_ROOT / "deploy" / "examples" / "torchjob-fixed.yaml"
PROCESS_NODES = {"type": "process"}  # the label every process node carries (kwok's fake nodes: type=kwok)
OPERATOR = "pyroclast-operator"


def install_crd(cluster: Cluster) -> str:
    """Apply the generated CRDs (TorchJob and the runtimes; idempotent) and wait until they are served;
    returns the TorchJob CRD's name."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=render_crd())
    deadline = time.monotonic() + 60
    for plural in ("torchjobs", "clustertorchruntimes", "torchruntimes"):
        while cluster.kubectl("get", plural, "-A", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {plural} CRD was not served within 60 s")
            time.sleep(0.5)
    print(f"crd: {CRD_NAME}", flush=True)
    return CRD_NAME


def operator_component(cluster: Cluster) -> Component:
    """`pyroclast run` against the cluster, with its metrics and probes on free loopback ports and, with a pod
    network, its live-progress endpoint on the network's host address (where workers reach it)."""
    metrics, health = free_port(), free_port()
    progress: list[str] = []
    if cluster.pod_host is not None:
        port = free_port(cluster.pod_host)
        address = f"{cluster.pod_host}:{port}"
        progress = ["--progress-bind-address", address, "--progress-url", f"http://{address}"]

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
            *progress,
        ],
        log_path=cluster.workdir / "logs" / f"{OPERATOR}.log",
        healthy=ready,
    )
    print(f"operator: metrics http://{HOST}:{metrics}/metrics, log {component.log_path}", flush=True)
    return component


def sample_job(cluster: Cluster) -> dict[str, Any]:
    """The sample TorchJob: the CPU one pinned to the process nodes, else the GPU one for kwok's nodes."""
    if cluster.pod_host is None:
        job: dict[str, Any] = yaml.safe_load(GPU_SAMPLE_JOB.read_text())
        return job
    job = yaml.safe_load(SAMPLE_JOB.read_text())
    template = job["spec"].setdefault("template", {})
    template.setdefault("spec", {})["nodeSelector"] = dict(PROCESS_NODES)  # not the fake GPU nodes
    return job


def apply_sample_job(cluster: Cluster, *, timeout: float = 180.0) -> str:
    """Submit the sample job and wait until its gang is Running; returns its name."""
    job = sample_job(cluster)
    name = str(job["metadata"]["name"])
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    deadline = time.monotonic() + timeout
    phase = None
    while time.monotonic() < deadline:
        out = cluster.kubectl("get", "torchjob", name, "-o", "json", check=False)
        if out.returncode == 0:
            phase = (json.loads(out.stdout).get("status") or {}).get("phase")
            if phase == "Running":
                print(cluster.kubectl("get", "torchjobs,podgroups,pods", "-o", "wide").stdout, flush=True)
                if cluster.pod_host is not None:
                    print(
                        f"{name} trains on the process nodes: `.venv/bin/pyroclast job logs -f {name}` "
                        f"follows its step lines, `kubectl get tj {name} -o wide -w` its STEP and CHECKPOINT",
                        flush=True,
                    )
                return name
        time.sleep(1)
    raise RuntimeError(f"sample job {name} is {phase or 'not reported'} after {timeout:.0f} s, not Running")

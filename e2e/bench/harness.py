"""Shared pieces of the TorchJob cluster benchmarks: the rig with an audit log, the operator process, jobs."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from controller.runtime.objects import JsonObject
from e2e.cluster import Cluster
from e2e.cluster.operator import install_crd
from e2e.cluster.pool import NodePool
from e2e.torchjobs import torchjob

OPERATOR_AGENT = ("pyroclast", "kr8s/")
"""User-agent prefixes of the operator's client, current and earlier (the bench writes with kubectl)."""


def start_rig(*, audit: bool = True, volcano_jobs: bool = False, kube_jobs: bool = False) -> Cluster:
    """The local rig (watch cache on, as in production), write audit per `audit`, the CRD installed;
    `volcano_jobs` also runs Volcano's job controller (the vcjob peer), `kube_jobs` Kubernetes' (JobSet's)."""
    cluster = Cluster(audit=audit, watch_cache=True, volcano_jobs=volcano_jobs, kube_jobs=kube_jobs)
    cluster.start()
    install_crd(cluster)
    return cluster


def start_operator(
    kubeconfig: Path,
    log_path: Path,
    *,
    args: tuple[str, ...] = (),
    metrics: str = "0",
    health: str = "0",
) -> subprocess.Popen[bytes]:
    """`pyroclast run` as its own process (as a Deployment runs it), output appended to `log_path`.

    `metrics`/`health` are bind addresses ("0": off); `args` adds flags (`--workers`, `--kube-api-qps`)."""
    argv = [
        sys.executable, "-m", "pyroclast.cli", "run", "--kubeconfig", str(kubeconfig),
        "--metrics-bind-address", metrics, "--health-probe-bind-address", health, *args,
    ]  # fmt: skip
    with log_path.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def stop_operator(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the operator and reap it (SIGKILL after 30 s)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def new_namespace(cluster: Cluster, prefix: str) -> str:
    """A fresh namespace."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    cluster.create_namespace(name)
    return name


def job(name: str, pool: NodePool, *, workers: int, succeed_after: str | None = "3s") -> JsonObject:
    """A fixed-size job of `workers` 1-CPU workers on `pool`; kwok succeeds its pods after `succeed_after`."""
    annotations = {"pyroclast.dev/test-succeed-after": succeed_after} if succeed_after else {}
    return torchjob(name, pool, count=workers, annotations=annotations)


def kubectl_json(cluster: Cluster, *args: str) -> JsonObject:
    """`kubectl get ... -o json`, parsed."""
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def wait_until(what: str, probe: Any, timeout: float, interval: float = 1.0) -> Any:
    """Poll `probe()` until truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout:.0f} s (last: {last!r})")

"""A Go peer of the benchmarks as a process on the rig: built by its script, its CRD applied from the Go
module cache, started with loopback listeners and awaited on /readyz (see e2e/build-peer.sh)."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from controller.runtime.objects import JsonObject
from e2e.cluster import Cluster
from e2e.cluster.api import wait_for
from e2e.cluster.ports import HOST, free_port


class PeerUnavailable(RuntimeError):
    """A peer could not be built or started; the message says why."""


def build(script: Path) -> Path:
    """Build (or reuse) a peer's binary with `script`; raises PeerUnavailable with the build's error text."""
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise PeerUnavailable(f"{script.name} failed (exit {proc.returncode}):\n{tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


def install_crd(cluster: Cluster, path: Path, name: str) -> None:
    """Apply the CRD file at `path` and wait until `name` is Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    wait_for(f"CRD {name} Established", lambda: _established(cluster, name), 60)


def _established(cluster: Cluster, name: str) -> bool:
    crd = cluster.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
    conditions: list[JsonObject] = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def start(
    cluster: Cluster, name: str, binary: Path, flags: tuple[str, ...], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start the peer (metrics and probes on loopback) and wait until its /readyz answers."""
    health = free_port()
    argv = [
        str(binary), f"--kubeconfig={cluster.kubeconfig}",
        f"--metrics-bind-address={HOST}:{free_port()}", f"--health-probe-bind-address={HOST}:{health}",
        *flags,
    ]  # fmt: skip
    with log_path.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(name, proc, health, log_path)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def _wait_ready(name: str, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PeerUnavailable(f"{name} exited {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise PeerUnavailable(f"{name} not ready in 90 s; see {log_path}")

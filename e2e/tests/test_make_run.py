"""`make run` as a newcomer meets it: `python -m e2e.cluster run` brings up its own rig, and its sample job
really trains on process nodes: `pyroclast job logs -f` shows the workers' step lines and `kubectl get tj`'s
STEP column moves. Ctrl-C (SIGTERM here) leaves no process, bridge or namespace behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.cluster import BinaryNotFoundError, network, wait_for
from e2e.cluster.binaries import find_all
from e2e.cluster.operator import SAMPLE_JOB
from tests.required import missing

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Ctrl-C (or SIGTERM) stops everything."


def _unavailable() -> str | None:
    try:
        find_all()
    except BinaryNotFoundError as exc:
        return str(exc)
    return network.namespaces_unavailable()


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, list[str]]]:
    if reason := _unavailable():
        missing(f"make run needs the cluster binaries and process nodes: {reason}")
    kubeconfig = tmp_path / "kubeconfig"
    argv = [sys.executable, "-m", "e2e.cluster", "run", "--kubeconfig", str(kubeconfig)]
    argv += ["--workdir", str(tmp_path / "rig")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.PIPE
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.strip() == READY_LINE or time.monotonic() > deadline:
            break
    assert lines[-1:] == [READY_LINE], "\n".join(lines[-40:])
    yield proc, kubeconfig, lines
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def _run(kubectl: list[str], *args: str) -> str:
    return subprocess.run([*kubectl, *args], capture_output=True, text=True, check=True, timeout=60).stdout


def _step(kubectl: list[str], job: str) -> int | None:
    status = json.loads(_run(kubectl, "get", "tj", job, "-o", "json")).get("status") or {}
    step = (status.get("progress") or {}).get("step")
    return int(step) if step is not None else None


def _follow_steps(kubeconfig: Path, job: str, count: int, within: float) -> list[int]:
    """What the newcomer types, `pyroclast job logs -f`: the steps of the first `count` progress lines."""
    argv = [sys.executable, "-m", "pyroclast.cli", "job", "logs", "-f", job, "--kubeconfig", str(kubeconfig)]
    logs = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    steps: list[int] = []
    assert logs.stdout is not None
    deadline = time.monotonic() + within
    try:
        for line in logs.stdout:  # "[worker-0] {...}": each worker's lines, prefixed
            if '"event": "progress"' in line:
                steps.append(int(json.loads(line.split("] ", 1)[1])["step"]))
            if len(steps) >= count or time.monotonic() > deadline:
                break
    finally:
        logs.terminate()
        logs.wait(10)
    return steps


def test_make_run_sample_really_trains_and_stops_clean(
    make_run: tuple[subprocess.Popen[str], Path, list[str]],
) -> None:
    proc, kubeconfig, lines = make_run
    job = str(yaml.safe_load(SAMPLE_JOB.read_text())["metadata"]["name"])
    network_line = re.search(r"bridge (pyro\w+), host address ([\d.]+)", "\n".join(lines))
    assert network_line, "the rig has a pod network"
    bridge, pod_host = network_line.groups()
    assert any(line.startswith("process nodes: ") for line in lines)
    kubectl = [str(kubeconfig.parent / "bin" / "kubectl"), f"--kubeconfig={kubeconfig}"]
    bound = {p["spec"]["nodeName"] for p in json.loads(_run(kubectl, "get", "pods", "-o", "json"))["items"]}
    assert bound
    assert all(name.startswith("proc-") for name in bound), f"workers on process nodes: {bound}"

    steps = _follow_steps(kubeconfig, job, 10, 120)
    assert len(steps) >= 10, steps
    assert steps == sorted(steps), steps
    assert steps[-1] > steps[0], steps
    first = wait_for("status.progress reported", lambda: _step(kubectl, job), 90, interval=1)
    t0 = time.monotonic()

    def moved() -> int | None:
        step = _step(kubectl, job)
        return step if step is not None and step > first else None

    second = wait_for("status.progress moving", moved, 90, interval=1)
    assert "STEP" in _run(kubectl, "get", "tj", job, "-o", "wide").splitlines()[0]
    print(f"sample job {job}: status.progress.step {first} -> {second} in {time.monotonic() - t0:.1f} s")

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 0
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True, check=False).returncode != 0
    for mark in (str(kubeconfig.parent / "rig"), f"{pod_host}:"):  # every component names one or the other
        leftovers = subprocess.run(["pgrep", "-f", mark], capture_output=True, text=True, check=False)
        assert leftovers.stdout.strip() == "", f"no process of the rig survives Ctrl-C ({mark})"

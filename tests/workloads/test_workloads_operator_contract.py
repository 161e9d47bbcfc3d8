"""Real torchrun agents (no kwok) started exactly as the operator starts an elastic job's pods.

Each agent gets the trainer container's command and env from :func:`controller.torchjob.pod.desired_worker`
(torchrun reads every launcher flag from ``PET_*``), and the store runs the module the rendezvous pod runs.
Only what a cluster provides is replaced: DNS names by loopback addresses, the termination log by a file.
Losing worker 0, the pod that would host the rendezvous store of a fixed-size gang, must not end the job.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from api import TorchJob, contract
from controller.torchjob.pod import desired_worker
from controller.torchjob.rendezvous import desired_rendezvous_pod
from tests.required import import_or_missing
from tests.workloads.harness import Agent, _env, read_events, rendezvous_store, wait_for

import_or_missing("torch", "workloads")

pytestmark = [pytest.mark.torch, pytest.mark.slow, pytest.mark.timeout(90)]

TOTAL_STEPS = 12


def elastic_job(ckpt: Path) -> TorchJob:
    return TorchJob.model_validate(
        {
            "metadata": {"name": "elastic", "namespace": "team-a", "uid": "0c5e-uid", "generation": 1},
            "spec": {
                "image": "train:1",
                "command": ["-m", "workloads.train"],
                "args": ["--total-steps", str(TOTAL_STEPS), "--global-batch", "8", "--dataset-size", "48"],
                "nprocPerNode": 1,
                "nodes": {"count": 2, "min": 1, "max": 2},
                "checkpoint": {"volume": {"emptyDir": {}}, "path": str(ckpt), "intervalSteps": 2},
                "rendezvous": {
                    "lastCallTimeout": "1s",
                    "joinTimeout": "60s",
                    "readTimeout": "30s",
                    "keepAliveInterval": "1s",
                    "keepAliveMaxAttempts": 2,
                    "maxRestarts": 3,
                },
            },
        }
    )


def start_worker(
    job: TorchJob,
    index: int,
    store_port: int,
    workdir: Path,
    attempt: int = 0,
    resume_from: str | None = None,
) -> Agent:
    """Worker pod `index` of `attempt`, as a local torchrun with the pod's command and env."""
    pod = desired_worker(job, index, attempt, resume_from)
    trainer = pod["spec"]["containers"][0]
    env: dict[str, str] = {e["name"]: e["value"] for e in trainer["env"]}
    assert env[contract.PET_RDZV_ENDPOINT] == "elastic-rdzv.team-a.svc:29400"  # the store pod's Service
    name = f"worker-{index}-attempt-{attempt}"
    env |= {
        contract.PET_RDZV_ENDPOINT: f"127.0.0.1:{store_port}",
        contract.PET_LOCAL_ADDR: f"127.0.0.{index + 2}",
        contract.TERMINATION_LOG: str(workdir / f"{name}.termination"),
        contract.PROGRESS_FILE: str(workdir / "progress.jsonl"),
        contract.STEP_SLEEP: "0.2",
        contract.INIT_TIMEOUT: "60",
        contract.STEP_TIMEOUT: "15",
    }
    launcher, *rest = [*trainer["command"], *trainer["args"]]
    assert launcher == "torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", *rest]
    with (workdir / f"{name}.out").open("w") as out, (workdir / f"{name}.err").open("w") as err:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, env=_env(env), cwd=workdir, start_new_session=True
        )
    return Agent(name, proc, workdir)


def committed_at_world_size_2(events: list[dict[str, Any]]) -> bool:
    return any(e["event"] == "checkpoint" for e in events) and any(
        e["event"] == "progress" and e["world_size"] == 2 and e["step"] >= 3 for e in events
    )


def test_losing_the_would_be_rendezvous_host_does_not_end_the_job(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    job = elastic_job(ckpt)
    store_cmd = desired_rendezvous_pod(job)["spec"]["containers"][0]["command"]
    assert store_cmd[:3] == ["python", "-m", "workloads.rendezvous"]  # what the harness store runs
    progress = tmp_path / "progress.jsonl"
    started = time.monotonic()
    with rendezvous_store(tmp_path) as port:
        workers = [start_worker(job, i, port, tmp_path) for i in range(2)]
        host, survivor = workers
        try:
            wait_for(progress, committed_at_world_size_2, 50, workers)
            host.kill_node()  # SIGKILL worker-0's agent and trainer, like losing its pod
            assert survivor.wait(timeout=40) == 0, survivor.log()
        finally:
            for worker in workers:
                worker.stop()
    elapsed = time.monotonic() - started
    events = read_events(progress)
    kill_index = next(i for i, e in enumerate(events) if e["event"] == "resume")
    resume = events[kill_index]
    assert resume["new_world_size"] == 1
    assert resume["old_world_size"] == 2
    before = [e["step"] for e in events[:kill_index] if e["event"] == "checkpoint"]
    assert resume["from_step"] == max(before)  # the newest committed checkpoint
    assert events[-1]["event"] == "end"
    assert events[-1]["step"] == TOTAL_STEPS
    term = json.loads((tmp_path / "worker-1-attempt-0.termination").read_text())
    assert term["reason"] == "completed"
    assert term["committed_step"] == TOTAL_STEPS
    assert term["total_steps"] == TOTAL_STEPS
    assert term["committed_time"] > 0
    print(f"elastic job survived losing worker 0 in {elapsed:.1f} s")


def test_losing_the_store_ends_the_attempt_cleanly_and_the_next_attempt_resumes(tmp_path: Path) -> None:
    """The store is in memory: losing it ends the attempt (every agent exits non-zero, its workers drain and
    commit); the operator's next attempt (fresh rendezvous id, new store, PYROCLAST_RESUME_FROM) resumes."""
    job = elastic_job(tmp_path / "ckpt")
    progress = tmp_path / "progress.jsonl"
    with rendezvous_store(tmp_path) as port:
        workers = [start_worker(job, i, port, tmp_path) for i in range(2)]
        try:
            wait_for(progress, committed_at_world_size_2, 50, workers)
        except BaseException:
            for worker in workers:
                worker.stop()
            raise
    # the store is gone (its context ended): both agents fail within seconds instead of hanging
    try:
        codes = [worker.wait(timeout=30) for worker in workers]
    finally:
        for worker in workers:
            worker.stop()
    assert all(code != 0 for code in codes), codes
    reports = [json.loads((tmp_path / f"worker-{i}-attempt-0.termination").read_text()) for i in range(2)]
    committed = max(r["committed_step"] for r in reports)
    assert {r["reason"] for r in reports} <= {"drained", "failed"}
    assert 0 < committed < TOTAL_STEPS

    resume_from = f"{tmp_path / 'ckpt'}/step-{committed:012d}"
    with rendezvous_store(tmp_path) as port:
        again = start_worker(job, 0, port, tmp_path, attempt=1, resume_from=resume_from)
        try:
            assert again.wait(timeout=40) == 0, again.log()
        finally:
            again.stop()
    events = read_events(progress)
    resume = [e for e in events if e["event"] == "resume"][-1]
    assert resume["from_step"] == committed
    assert resume["new_world_size"] == 1
    assert events[-1]["event"] == "end"
    assert events[-1]["step"] == TOTAL_STEPS


def test_store_pod_readiness_probe_leaves_the_store_serving(tmp_path: Path) -> None:
    """The store pod's tcpSocket probe connects and hangs up without a word; the TCPStore must not mind."""
    from datetime import timedelta

    from torch.distributed import TCPStore  # pyright: ignore[reportPrivateImportUsage]

    probe = desired_rendezvous_pod(elastic_job(tmp_path))["spec"]["containers"][0]["readinessProbe"]
    assert "tcpSocket" in probe
    with rendezvous_store(tmp_path) as port:
        for _ in range(5):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        client = TCPStore("127.0.0.1", port, is_master=False, timeout=timedelta(seconds=10))
        client.set("probe", "ok")
        assert client.get("probe") == b"ok"

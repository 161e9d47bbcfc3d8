"""MLflow tracking against a real tracking server on 127.0.0.1, across a crash and restart."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import contract
from tests.required import import_or_missing, missing
from tests.workloads.harness import job_env, read_events, start_agent
from tests.workloads.progress_stub import progress_stub

import_or_missing("torch", "workloads")
import_or_missing("mlflow", "tracking-server")

pytestmark = [pytest.mark.torch, pytest.mark.slow, pytest.mark.timeout(240)]


def _server_binary() -> str:
    """``PYROCLAST_TEST_MLFLOW_BIN`` (an ``mlflow`` from a full install) or the venv's own ``mlflow``."""
    return os.environ.get("PYROCLAST_TEST_MLFLOW_BIN") or str(Path(sys.executable).parent / "mlflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "mlflow-server.log"
    cmd = [
        _server_binary(),
        "server",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--backend-store-uri=sqlite:///{tmp_path}/mlflow.db",
        f"--default-artifact-root={tmp_path}/artifacts",
        "--workers=1",
    ]
    with log.open("w") as out:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        except FileNotFoundError:
            missing(f"no mlflow server binary at {cmd[0]}")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                text = log.read_text()
                if "No module named" in text:
                    missing(
                        "the MLflow tracking server needs the full `mlflow` package "
                        "(pyroclast[tracking-server]) or PYROCLAST_TEST_MLFLOW_BIN"
                    )
                pytest.fail(f"mlflow server exited: {text[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        # The server runs its workers in its own session: stop them all, forcibly if a loaded machine is slow.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _run_restarted(
    tmp_path: Path, tracking_server: str, experiment: str, **env: Any
) -> tuple[list[dict[str, Any]], str]:
    """A 6-step, 2-process job tracked to `experiment` that fails once (per `env`), restarts; its events and
    its log."""
    job = job_env(
        tmp_path,
        PYROCLAST_TOTAL_STEPS=6,
        MLFLOW_TRACKING_URI=tracking_server,
        PYROCLAST_MLFLOW_EXPERIMENT=experiment,
        **env,
    )
    agent = start_agent(tmp_path, "solo", port=None, nproc=2, max_restarts=1, env=job)
    try:
        assert agent.wait(timeout=200) == 0, agent.log()
    finally:
        agent.stop()
    return read_events(tmp_path / "progress.jsonl"), agent.log()


def test_rank0_logs_one_run_that_survives_a_restart(tmp_path: Path, tracking_server: str) -> None:
    from mlflow.tracking import MlflowClient

    events, _ = _run_restarted(tmp_path, tracking_server, "pyroclast-test", PYROCLAST_FAULT="train@3")
    assert [e["from_step"] for e in events if e["event"] == "resume"] == [2]

    client = MlflowClient(tracking_uri=tracking_server)
    experiment = client.get_experiment_by_name("pyroclast-test")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # the restart reopened the run instead of starting another
    run = runs[0]
    assert run.info.run_id == (tmp_path / "ckpt" / "mlflow_run_id").read_text().strip()
    assert run.info.status == "FINISHED"
    assert run.data.params["global_batch"] == "8"
    assert run.data.params["total_steps"] == "6"
    assert run.data.tags["pyroclast.final_checkpoint"] == str(tmp_path / "ckpt" / "step-000000000006")
    history = client.get_metric_history(run.info.run_id, "loss")
    by_step = {m.step: m.value for m in history}
    assert sorted(by_step) == [1, 2, 3, 4, 5, 6]
    progress = {e["step"]: e["loss"] for e in events if e["event"] == "progress"}
    assert by_step == pytest.approx(progress)
    assert {m.value for m in client.get_metric_history(run.info.run_id, "world_size")} == {2.0}


def test_rank0_logs_the_runs_step_goodput_at_the_end(tmp_path: Path, tracking_server: str) -> None:
    from mlflow.tracking import MlflowClient

    # checkpoints at 3 and 6; the fault at step 5 loses step 4, done again after the resume from 3
    events, log = _run_restarted(
        tmp_path,
        tracking_server,
        "pyroclast-goodput",
        PYROCLAST_CHECKPOINT_INTERVAL=3,
        PYROCLAST_FAULT="train@5",
    )
    assert [e["from_step"] for e in events if e["event"] == "resume"] == [3]
    client = MlflowClient(tracking_uri=tracking_server)
    experiment = client.get_experiment_by_name("pyroclast-goodput")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    metrics = run.data.metrics
    assert metrics["goodput_recomputed_steps"] == 1.0
    step_seconds = [e["step_s"] for e in events if e["event"] == "progress"]
    assert len(step_seconds) == 7  # steps 1..4, then 4..6 again
    assert metrics["goodput_kept_step_seconds"] + metrics["goodput_recomputed_step_seconds"] == pytest.approx(
        sum(step_seconds), rel=1e-3
    )
    assert 0 < metrics["goodput_step_fraction"] < 1
    # without live progress the job's own accounting is unknown to the workload: nothing logged, and why
    assert not [name for name in metrics if name.startswith("job_")]
    assert "pyroclast.job_cost_currency" not in run.data.tags
    assert "job cost and goodput not logged to MLflow: live progress is off" in log


def test_rank0_logs_the_jobs_cost_and_goodput_from_the_operators_answer(
    tmp_path: Path, tracking_server: str
) -> None:
    from mlflow.tracking import MlflowClient

    accounting: contract.ProgressAccounting = {
        "cost": 1.75,
        "currency": "EUR",
        "goodputPercent": 82.5,
        "lostSeconds": {"queued": 3.0, "restarting": 4.5, "preempted": 0.0, "recomputed": 1.25},
    }
    token = tmp_path / "token"
    token.write_text("worker-token")
    with progress_stub() as (stub, url):
        stub.extra = {"accounting": accounting}
        _run_restarted(
            tmp_path,
            tracking_server,
            "pyroclast-job-accounting",
            PYROCLAST_FAULT="train@3",
            PYROCLAST_PROGRESS_URL=url,
            PYROCLAST_PROGRESS_TOKEN_FILE=token,
        )
    assert [json.loads(body)["step"] for _, _, body in stub.requests] == [6], "rank 0 posts the last step"
    client = MlflowClient(tracking_uri=tracking_server)
    experiment = client.get_experiment_by_name("pyroclast-job-accounting")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    job_metrics = {name: value for name, value in run.data.metrics.items() if name.startswith("job_")}
    assert job_metrics == {
        "job_cost": 1.75,
        "job_goodput_percent": 82.5,
        "job_lost_queued_seconds": 3.0,
        "job_lost_restarting_seconds": 4.5,
        "job_lost_preempted_seconds": 0.0,
        "job_lost_recomputed_seconds": 1.25,
    }
    assert run.data.tags["pyroclast.job_cost_currency"] == "EUR"
    assert "goodput_step_fraction" in run.data.metrics, "next to the workload's own goodput"
    cost = client.get_metric_history(run.info.run_id, "job_cost")
    assert [m.step for m in cost] == [6], "logged once, at the last step"

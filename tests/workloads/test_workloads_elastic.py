"""Real torchrun agents on loopback (gloo, CPU): node loss, preemption, save crashes, resize, determinism."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.required import import_or_missing
from tests.workloads.harness import (
    BATCH,
    DATASET,
    Agent,
    final_losses,
    job_env,
    read_events,
    rendezvous_store,
    sample_log,
    start_agent,
    wait_for,
)

import_or_missing("torch", "workloads")

pytestmark = [pytest.mark.torch, pytest.mark.slow, pytest.mark.timeout(240)]


def run_standalone(
    workdir: Path, nproc: int, max_restarts: int = 0, **overrides: Any
) -> list[dict[str, Any]]:
    """One agent to completion; returns its progress events."""
    workdir.mkdir(parents=True, exist_ok=True)
    agent = start_agent(
        workdir, "solo", port=None, nproc=nproc, max_restarts=max_restarts, env=job_env(workdir, **overrides)
    )
    try:
        rc = agent.wait(timeout=200)
    finally:
        agent.stop()
    assert rc == 0, agent.log()
    return read_events(workdir / "progress.jsonl")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 12-step run at world size 2."""
    workdir = tmp_path_factory.mktemp("reference")
    events = run_standalone(workdir, nproc=2)
    assert sorted(final_losses(events)) == list(range(1, 13))
    return workdir


def committed_before(events: list[dict[str, Any]], index: int) -> int | None:
    steps = [e["step"] for e in events[:index] if e["event"] == "checkpoint"]
    return max(steps) if steps else None


def test_save_phase_crashes_resume_from_previous_commit_and_reproduce_loss_bitwise(
    tmp_path: Path, reference: Path
) -> None:
    # attempt i dies at fault i; checkpoints every 2 steps, so each restart must resume 2 steps back
    faults = "before_write@4,mid_write@6@1,before_manifest@8,before_latest@10,train@11"
    events = run_standalone(tmp_path, nproc=2, max_restarts=5, PYROCLAST_FAULT=faults)
    resumes = [(i, e) for i, e in enumerate(events) if e["event"] == "resume"]
    assert [e["from_step"] for _, e in resumes] == [2, 4, 6, 8, 10]
    for index, event in resumes:
        assert event["from_step"] == committed_before(events, index)
    # a crash before `latest` moved left a complete-looking step-10 dir behind; it was redone, not loaded
    assert [e["restart_count"] for _, e in resumes] == [1, 2, 3, 4, 5]
    assert events[-1]["event"] == "end"
    assert events[-1]["step"] == 12
    assert (tmp_path / "ckpt" / "latest").read_text().strip() == "step-000000000012"
    # same world size: the crashed-and-resumed trajectory is the uninterrupted one, bit for bit
    assert final_losses(events) == final_losses(read_events(reference / "progress.jsonl"))


def test_resume_at_world_size_2_after_saving_at_4_keeps_global_sample_order(
    tmp_path: Path, reference: Path
) -> None:
    run_standalone(tmp_path, nproc=4, PYROCLAST_TOTAL_STEPS=6, PYROCLAST_CHECKPOINT_INTERVAL=0)
    events = run_standalone(tmp_path, nproc=2)
    resume = next(e for e in events if e["event"] == "resume")
    assert (resume["from_step"], resume["old_world_size"], resume["new_world_size"]) == (6, 4, 2)

    got, want = sample_log(tmp_path), sample_log(reference)
    assert sorted(got) == list(range(1, 13))
    for step in range(1, 13):
        world = len(got[step])
        assert world == (4 if step <= 6 else 2)
        # interleaving the ranks' shares rebuilds the global batch, whatever the world size
        merged = [got[step][r][i] for i in range(BATCH // world) for r in range(world)]
        ref_world = len(want[step])
        expected = [want[step][r][i] for i in range(BATCH // ref_world) for r in range(ref_world)]
        assert merged == expected
    for epoch in range(2):  # each epoch: every sample exactly once
        seen = [i for step in range(1 + 6 * epoch, 7 + 6 * epoch) for ids in got[step].values() for i in ids]
        assert sorted(seen) == list(range(DATASET))

    losses, ref = final_losses(events), final_losses(read_events(reference / "progress.jsonl"))
    for step in range(7, 13):  # a different reduction order only changes rounding
        assert losses[step] == pytest.approx(ref[step], rel=1e-4)


def test_a_hung_peer_becomes_a_restart_within_the_step_timeout(tmp_path: Path) -> None:
    events = run_standalone(
        tmp_path, nproc=2, max_restarts=1, PYROCLAST_FAULT="hang@3@1", PYROCLAST_STEP_TIMEOUT=3
    )
    index, resume = next((i, e) for i, e in enumerate(events) if e["event"] == "resume")
    assert resume["from_step"] == 2
    stalled_since = max(e["ts"] for e in events[:index] if e["event"] == "progress")
    # rank 0 waits in the step-4 all-reduce on the wedged rank 1; without the lowered timeout gloo would
    # wait 30 minutes. Budget: 3 s timeout + worker restart on a loaded 2-core machine.
    assert resume["ts"] - stalled_since < 60
    assert events[-1]["event"] == "end"
    assert events[-1]["step"] == 12


def two_nodes(workdir: Path, port: int, **overrides: Any) -> tuple[Agent, Agent]:
    """Two 2-process nodes with async periodic saves (so commits lag behind the saved step)."""
    env = job_env(
        workdir,
        PYROCLAST_TOTAL_STEPS=40,
        PYROCLAST_CHECKPOINT_INTERVAL=5,
        PYROCLAST_CHECKPOINT_ASYNC=1,
        PYROCLAST_STEP_SLEEP=0.15,
        **overrides,
    )
    common: dict[str, Any] = {"port": port, "nnodes": "1:2", "nproc": 2, "max_restarts": 3, "env": env}
    first = start_agent(workdir, "node-a", local_addr="127.0.0.2", **common)
    second = start_agent(workdir, "node-b", local_addr="127.0.0.3", **common)
    return first, second


def committed_at_world_size_4(events: list[dict[str, Any]]) -> bool:
    return any(e.get("committed_step") and e.get("world_size") == 4 for e in events)


def trained_3_steps_at_world_size_4(events: list[dict[str, Any]]) -> bool:
    return any(e.get("step", 0) >= 3 and e.get("world_size") == 4 for e in events)


def test_kill_9_one_node_resumes_from_last_commit(tmp_path: Path) -> None:
    progress = tmp_path / "progress.jsonl"
    with rendezvous_store(tmp_path) as port:
        a, b = two_nodes(tmp_path, port)
        try:
            wait_for(progress, committed_at_world_size_4, 120, [a, b])
            a.kill_node()  # node-a (127.0.0.2) holds global rank 0 and the trainer store
            assert b.wait(timeout=150) == 0, b.log()
        finally:
            a.stop()
            b.stop()
    events = read_events(progress)
    index, resume = next((i, e) for i, e in enumerate(events) if e["event"] == "resume")
    assert resume["new_world_size"] == 2
    assert resume["from_step"] == committed_before(events, index)
    assert events[-1]["event"] == "end"
    assert events[-1]["step"] == 40
    term = json.loads((tmp_path / "node-b.termination").read_text())
    assert term["reason"] == "completed"
    assert term["committed_step"] == 40


@pytest.mark.parametrize("victim", ["node-a", "node-b"])
def test_sigterm_one_node_loses_no_steps(tmp_path: Path, victim: str) -> None:
    progress = tmp_path / "progress.jsonl"
    with rendezvous_store(tmp_path) as port:
        a, b = two_nodes(tmp_path, port)
        # node-a (127.0.0.2 sorts first) holds global rank 0; either pod may be the preempted one
        preempted, survivor = (a, b) if victim == "node-a" else (b, a)
        try:
            wait_for(progress, trained_3_steps_at_world_size_4, 120, [a, b])
            preempted.proc.send_signal(signal.SIGTERM)
            assert preempted.wait(timeout=60) != 0  # torchrun re-raises the signal as a failure
            assert survivor.wait(timeout=150) == 0, survivor.log()
        finally:
            a.stop()
            b.stop()
    events = read_events(progress)
    index, drain = next((i, e) for i, e in enumerate(events) if e["event"] == "drain")
    assert drain["committed_step"] == drain["step"]
    last_trained = max(e["step"] for e in events[:index] if e["event"] == "progress")
    resume = next(e for e in events[index:] if e["event"] == "resume")
    assert resume["from_step"] == drain["step"] >= last_trained  # 0 steps lost
    assert resume["new_world_size"] == 2
    assert events[-1]["event"] == "end"
    assert events[-1]["step"] == 40
    assert json.loads((tmp_path / f"{victim}.termination").read_text())["reason"] == "drained"
    assert json.loads((tmp_path / f"{survivor.name}.termination").read_text())["reason"] == "completed"

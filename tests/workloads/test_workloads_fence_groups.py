"""Two real torchrun groups on one checkpoint root, as after a rendezvous split: the newer one wins."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from api import contract
from tests.required import import_or_missing
from tests.workloads.harness import Agent, job_env, read_events, start_agent, wait_for
from workloads import fence

import_or_missing("torch", "workloads")

pytestmark = [pytest.mark.torch, pytest.mark.slow, pytest.mark.timeout(240)]

TOTAL = 80


def group_env(workdir: Path, ckpt: Path, name: str, **overrides: Any) -> dict[str, str]:
    return job_env(
        workdir,
        PYROCLAST_CHECKPOINT_DIR=ckpt,
        PYROCLAST_PROGRESS_FILE=workdir / f"{name}.jsonl",
        PYROCLAST_TOTAL_STEPS=TOTAL,
        **overrides,
    )


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def test_an_older_group_stops_without_committing_once_a_newer_one_claims_the_root(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    old_progress, new_progress = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    # the old group saves in the background, so a save is often in flight when it is fenced
    old = start_agent(
        tmp_path,
        "old",
        port=None,
        nproc=2,
        max_restarts=0,
        env=group_env(tmp_path, ckpt, "old", PYROCLAST_STEP_SLEEP=0.25, PYROCLAST_CHECKPOINT_ASYNC=1),
    )
    new: Agent | None = None
    try:
        wait_for(old_progress, lambda ev: any((e.get("committed_step") or 0) >= 4 for e in ev), 120, [old])
        # its own store and run id: nothing but the checkpoint root is shared, as in a split rendezvous
        new = start_agent(
            tmp_path, "new", port=None, nproc=1, max_restarts=0, env=group_env(tmp_path, ckpt, "new")
        )
        old_rc = old.wait(timeout=120)
        new_rc = new.wait(timeout=150)
    finally:
        old.stop()
        if new is not None:
            new.stop()
    assert new is not None
    assert new_rc == 0, new.log()
    assert old_rc != 0, old.log()  # the worker's exit failed its agent, which had no restart left

    old_events, new_events = read_events(old_progress), read_events(new_progress)
    (old_claim,) = of(old_events, "claim")
    (new_claim,) = of(new_events, "claim")
    assert (old_claim["epoch"], new_claim["epoch"]) == (1, 2)
    assert fence.read(ckpt) == fence.Claim(2, new_claim["owner"])

    (fenced,) = of(old_events, "fenced")
    assert (fenced["epoch"], fenced["owner"]) == (1, old_claim["owner"])
    assert (fenced["seen_epoch"], fenced["seen_owner"]) == (2, new_claim["owner"])
    assert old_events[-1] == fenced  # nothing after it: no drain, no end, no checkpoint
    assert not of(old_events, "end")
    old_steps = [e["step"] for e in of(old_events, "progress")]
    assert fenced["step"] == old_steps[-1] < TOTAL

    # the old group committed nothing after the claim: the newer group resumed from its last commit
    old_commits = of(old_events, "checkpoint")
    assert old_commits
    assert all(e["ts"] < new_claim["ts"] for e in old_commits)
    (resume,) = of(new_events, "resume")
    assert resume["from_step"] == old_commits[-1]["step"] == fenced["committed_step"]
    assert (resume["old_world_size"], resume["new_world_size"]) == (2, 1)
    new_steps = [e["step"] for e in of(new_events, "progress")]
    assert new_steps == list(range(resume["from_step"] + 1, TOTAL + 1))
    assert new_events[-1]["event"] == "end"
    assert (ckpt / "latest").read_text().strip() == contract.step_dir_name(TOTAL)

    term = json.loads((tmp_path / "old.termination").read_text())
    assert term["reason"] == "fenced"
    assert "newer worker group" in term["error"]
    assert re.search(rf"exitcode\s*:\s*{contract.EXIT_FENCED}\b", old.log()), old.log()
    assert json.loads((tmp_path / "new.termination").read_text())["reason"] == "completed"

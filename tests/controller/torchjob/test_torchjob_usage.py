"""Usage (resource-seconds held by worker pods, every attempt) and its cost at the configured rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import ResourceSeconds, Usage
from controller.torchjob.prune import prune_pod
from controller.torchjob.rates import Rates, RatesError, load_rates
from controller.torchjob.usage import lifetime, per_pod, usage
from tests.controller.torchjob.plans import make_job, pod

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RESOURCES = {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"nvidia.com/gpu": "2", "cpu": "8"}}
RATES = Rates.model_validate(
    {
        "currency": "EUR",
        "perHour": {"gpu": 3.6, "cpu": 0.36, "memoryGiB": 0.036},
        "queues": {"spot": {"gpu": 1.8}},
    }
)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def started(obj: dict[str, Any], at: datetime, finished: datetime | None = None) -> dict[str, Any]:
    obj["status"]["startTime"] = iso(at)
    if finished is not None:
        terminated = {"exitCode": 0, "finishedAt": iso(finished)}
        obj["status"]["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
    return obj


def test_a_pod_holds_its_requests_else_its_limits() -> None:
    assert per_pod(make_job(resources=RESOURCES)) == ResourceSeconds(
        gpu_seconds=2, cpu_seconds=4, memory_gi_b_seconds=16, pod_seconds=1
    )
    assert per_pod(make_job()) == ResourceSeconds(pod_seconds=1)


def test_lifetime_runs_from_start_to_the_trainer_finish_or_now() -> None:
    job = make_job()
    assert lifetime(pod(job, 0), T0) == 0  # never started
    assert lifetime(started(pod(job, 0), T0), T0 + timedelta(seconds=90)) == 90
    done = started(pod(job, 0), T0, T0 + timedelta(seconds=30))
    assert lifetime(done, T0 + timedelta(seconds=90)) == 30
    # the operator reads pods as its cache prunes them
    assert lifetime(prune_pod(done), T0 + timedelta(seconds=90)) == 30
    assert lifetime(prune_pod(started(pod(job, 1), T0)), T0 + timedelta(seconds=90)) == 90


def test_usage_sums_the_pods_and_costs_them_at_the_queue_rates() -> None:
    job = make_job(resources=RESOURCES)
    pods = [started(pod(job, i), T0) for i in range(2)]
    now = T0 + timedelta(hours=1)
    result = usage(job, None, 0, pods, now, RATES)
    assert (result.gpu_seconds, result.cpu_seconds, result.memory_gi_b_seconds) == (14400, 28800, 115200)
    assert result.pod_seconds == 7200
    assert result.cost == pytest.approx(4 * 3.6 + 8 * 0.36 + 32 * 0.036)
    assert result.currency == "EUR"
    spot = make_job(resources=RESOURCES, scheduling={"queue": "spot"})
    assert usage(spot, None, 0, pods, now, RATES).cost == pytest.approx(4 * 1.8 + 8 * 0.36 + 32 * 0.036)
    assert usage(job, None, 0, pods, now).cost is None


def test_a_restart_settles_the_ending_attempt_and_the_next_one_adds_to_it() -> None:
    job = make_job(resources=RESOURCES)
    first = [started(pod(job, i), T0) for i in range(2)]
    at_restart = usage(job, None, 1, first, T0 + timedelta(seconds=100))
    assert at_restart.settled_attempts == 1
    assert at_restart.pod_seconds == 200
    assert at_restart.settled is not None
    assert at_restart.settled.pod_seconds == 200
    # the old pods linger while deleted: not counted again; the new attempt's pods are
    second = [started(pod(job, i, attempt=1), T0 + timedelta(seconds=150)) for i in range(2)]
    later = usage(job, at_restart, 1, [*first, *second], T0 + timedelta(seconds=250))
    assert later.pod_seconds == 200 + 2 * 100
    # pods that vanished before the restart was seen: what was written of them is kept
    gone = usage(job, later, 2, [], T0 + timedelta(seconds=300))
    assert gone.pod_seconds == 400


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1000)), max_size=20))
def test_usage_never_goes_down(passes: list[tuple[int, int]]) -> None:
    job = make_job(resources=RESOURCES)
    written: Usage | None = None
    now, attempt = T0, 0
    for bump, seconds in passes:
        now += timedelta(seconds=seconds)
        attempt += bump
        pods = [
            started(pod(job, i, attempt=attempt), now - timedelta(seconds=seconds // 2)) for i in range(2)
        ]
        new = usage(job, written, attempt, pods, now, RATES)
        if written is not None:
            assert new.gpu_seconds >= written.gpu_seconds
            assert new.pod_seconds >= written.pod_seconds
            assert (new.cost or 0) >= (written.cost or 0)
        written = new


def test_rates_file_errors_name_the_field(tmp_path: Path) -> None:
    good = tmp_path / "rates.yaml"
    good.write_text("currency: USD\nperHour: {gpu: 2.5}\nqueues: {spot: {gpu: 1}}\n")
    assert load_rates(good).prices("spot") == (1.0, 0.0, 0.0)
    assert load_rates(good).prices("other") == (2.5, 0.0, 0.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("perHour: {gpu: -1}\n")
    with pytest.raises(RatesError, match=r"perHour\.gpu"):
        load_rates(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("perHour: {gpus: 1}\n")
    with pytest.raises(RatesError, match="gpus"):
        load_rates(typo)
    with pytest.raises(RatesError, match="cannot read"):
        load_rates(tmp_path / "missing.yaml")

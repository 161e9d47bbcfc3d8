"""`pyroclast job estimate`: duration and cost from measured step times, never from an assumed scaling."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import TorchJob
from api.runtime import CLUSTER_PLURAL
from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from pyroclast.estimate import (
    EXPONENT_RANGE,
    Sample,
    estimate,
    estimate_text,
    match_of,
    samples,
    scaling_exponent,
    steps_to_run,
)
from pyroclast.job_cli import _estimate  # pyright: ignore[reportPrivateUsage]
from tests.virtual_time import run_virtual

JOBS_API = "apis/pyroclast.dev/v1alpha1"


def job(
    name: str,
    *,
    nodes: int,
    image: str | None = "img:1",
    phase: str = "Succeeded",
    runtime_ref: str | None = None,
    **status: Any,
) -> TorchJob:
    """A job with `image` (None: none of its own) naming ClusterTorchRuntime `runtime_ref` if given."""
    spec: dict[str, Any] = {"command": ["-m", "train"], "nodes": {"count": nodes}}
    if image is not None:
        spec["image"] = image
    if runtime_ref is not None:
        spec["runtimeRef"] = {"name": runtime_ref}
    return TorchJob.model_validate(
        {"metadata": {"name": name, "namespace": "ns"}, "spec": spec, "status": {"phase": phase, **status}}
    )


def resolved(runtime: str, image: str) -> dict[str, Any]:
    """status.runtime of a job resolved against ClusterTorchRuntime `runtime` that sets `image`."""
    spec = {"defaults": {"image": image}}
    return {"kind": "ClusterTorchRuntime", "name": runtime, "hash": "0" * 16, "spec": spec}


def measured(name: str, nodes: int, step_seconds: float, **kw: Any) -> TorchJob:
    status = {
        "goodput": {"stepSeconds": step_seconds},
        "progress": {"step": 1000, "totalSteps": 1000},
        "usage": {"podSeconds": 1000 * step_seconds * nodes, "cost": 1000 * step_seconds * nodes / 3600 * 2},
    }
    status["usage"]["currency"] = "USD"
    return job(name, nodes=nodes, **status, **kw)


def test_no_data_is_said_plainly() -> None:
    target = job("new", nodes=2, phase="Pending")
    rows = estimate(samples(target, [target]), [1, 2], None)
    assert [r.seconds for r in rows] == [None, None]
    assert rows[0].basis.startswith("no data")
    text = estimate_text("new", None, [], rows)
    assert "0 measured job(s)" in text
    assert "no data: no earlier attempt or finished job with this image" in text


def test_only_finished_jobs_of_the_same_image_and_the_jobs_own_attempts_count() -> None:
    target = job("mine", nodes=2, phase="Running", goodput={"stepSeconds": 0.5})
    others = [
        measured("done", 4, 0.3),
        measured("other-image", 4, 9.0, image="img:2"),
        measured("still-running", 4, 9.0, phase="Running"),
        job("unmeasured", nodes=8),
    ]
    found = samples(target, [target, *others])
    assert sorted(s.job for s in found) == ["ns/done", "ns/mine"]


def test_runtime_jobs_match_on_their_runtimes_image_and_on_the_runtime_itself() -> None:
    target = job("mine", nodes=2, image=None, runtime_ref="a", phase="Pending")
    others = [
        measured("same-runtime", 4, 0.3, image=None, runtime_ref="a", runtime=resolved("a", "img:1")),
        measured("other-runtime", 4, 9.0, image=None, runtime_ref="b", runtime=resolved("b", "img:2")),
        measured(
            "same-image-other-runtime", 4, 9.0, image=None, runtime_ref="c", runtime=resolved("c", "img:1")
        ),
        measured("direct-image", 2, 0.5),
        measured("direct-other-image", 2, 9.0, image="img:2"),
    ]
    # before its first reconcile the job's image is the one its runtime gives (read by the CLI)
    found = samples(target, [target, *others], {"defaults": {"image": "img:1"}})
    assert sorted(s.job for s in found) == ["ns/direct-image", "ns/same-runtime"]
    # a job naming the image itself matches runtime jobs by the image their runtime gave them
    direct = samples(job("direct", nodes=2, phase="Pending"), others)
    assert sorted(s.job for s in direct) == [
        "ns/direct-image",
        "ns/same-image-other-runtime",
        "ns/same-runtime",
    ]


def test_a_job_whose_image_is_unknown_matches_no_other_job() -> None:
    target = job("mine", nodes=2, image=None, runtime_ref="gone", phase="Pending")
    others = [measured("also-unknown", 4, 0.3, image=None, runtime_ref="gone")]
    assert samples(target, [target, *others]) == []
    text = estimate_text("mine", None, [], estimate([], [2], None), match_of(target))
    assert (
        "Nothing matches: no earlier attempt of mine and no Succeeded job with an unknown image and " in text
    )
    assert "runtime ClusterTorchRuntime/gone" in text
    assert "its runtime gives none" in text


def _wire(j: TorchJob) -> dict[str, Any]:
    return {"apiVersion": "pyroclast.dev/v1alpha1", "kind": "TorchJob", **j.to_k8s()}


def _run_estimate(fake: FakeApiServer, name: str, target: TorchJob | None = None) -> None:
    args = argparse.Namespace(
        target=target, name=name, namespace="ns", all_namespaces=False, steps=None, nodes=[2]
    )
    assert run_virtual(lambda: _estimate(Client(fake), args)) == 0


def test_the_cli_reads_the_runtime_of_a_job_not_yet_resolved(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeApiServer()
    fake.put_object(
        JOBS_API,
        CLUSTER_PLURAL,
        {
            "apiVersion": "pyroclast.dev/v1alpha1",
            "kind": "ClusterTorchRuntime",
            "metadata": {"name": "a"},
            "spec": {"defaults": {"image": "img:1"}},
        },
    )
    for j in (job("new", nodes=2, image=None, runtime_ref="a", phase="Pending"), measured("done", 2, 0.5)):
        fake.put_object(JOBS_API, "torchjobs", _wire(j))
    _run_estimate(fake, "new")
    out = capsys.readouterr().out
    assert "Estimate for new: 1 measured job(s)" in out
    assert "measured at 2 node(s) (1 job(s))" in out


def test_a_runtime_the_caller_may_not_read_leaves_the_image_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeApiServer()
    fake.put_object(JOBS_API, "torchjobs", _wire(measured("done", 2, 0.5)))
    fake.fail_next(403, methods=("GET",))  # the runtime, read before the jobs are listed
    _run_estimate(fake, "new", job("new", nodes=2, image=None, runtime_ref="a", phase="Pending"))
    out = capsys.readouterr().out
    assert "Nothing matches: no earlier attempt of new and no Succeeded job with an unknown image" in out


def test_the_cli_says_plainly_when_nothing_matches(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeApiServer()
    for j in (job("new", nodes=2, phase="Pending"), measured("other", 2, 0.5, image="img:2")):
        fake.put_object(JOBS_API, "torchjobs", _wire(j))
    _run_estimate(fake, "new")
    out = capsys.readouterr().out
    assert (
        "Nothing matches: no earlier attempt of new and no Succeeded job with image img:1 has a measured "
        in out
    )


def test_a_measured_node_count_uses_its_measurements_and_others_need_two_counts() -> None:
    one = [Sample("ns/a", 2, 0.5, 1000, 2 / 3600, "USD")]
    rows = estimate(one, [2, 4], None)
    assert rows[0].seconds == pytest.approx(500)
    assert rows[0].cost == pytest.approx(500 * 2 * 2 / 3600)
    assert rows[0].currency == "USD"
    assert rows[1].seconds is None
    assert rows[1].basis == "no data at 4 node(s): measured only at 2"
    # two node counts: step time halves from 2 to 4 nodes -> linear scaling measured, extrapolated to 8
    two = [*one, Sample("ns/b", 4, 0.25, 1000, None, None)]
    assert scaling_exponent(two) == pytest.approx(1.0)
    eight = estimate(two, [8], 2000)[0]
    assert eight.seconds == pytest.approx(2000 * 0.125)
    assert eight.basis.startswith("fitted: step time ~ nodes^-1.00")


def test_steps_default_to_what_the_measured_jobs_ran() -> None:
    runs = [Sample("a", 1, 1.0, 500, None, None), Sample("b", 1, 1.0, 500, None, None)]
    assert steps_to_run(runs, None) == 500
    assert steps_to_run(runs, 10) == 10
    unknown = estimate([Sample("a", 1, 1.0, None, None, None)], [1], None)[0]
    assert unknown.seconds is None
    assert "give --steps" in unknown.basis


@given(
    st.lists(
        st.tuples(st.integers(1, 64), st.floats(0.001, 100)), min_size=1, max_size=8, unique_by=lambda t: t[0]
    ),
    st.integers(1, 128),
)
def test_a_measured_count_is_estimated_from_exactly_its_measurement(
    points: list[tuple[int, float]], n: int
) -> None:
    runs = [Sample(f"j{i}", nodes, t, 100, None, None) for i, (nodes, t) in enumerate(points)]
    row = estimate(runs, [n], None)[0]
    exact = dict(points).get(n)
    if exact is not None:
        assert row.seconds == pytest.approx(100 * exact)
    elif len(points) < 2:
        assert row.seconds is None
    else:
        assert row.seconds is not None
        assert row.seconds > 0


def test_a_fit_from_noise_between_close_node_counts_is_bounded_and_said() -> None:
    runs = [Sample("a", 44, 67.0, 100, None, None), Sample("b", 45, 1.0, 100, None, None)]
    [row] = estimate(runs, [1], None)
    assert row.seconds is not None
    assert 0 < row.seconds < float("inf")
    assert f"nodes^-{EXPONENT_RANGE[1]:.2f}" in row.basis
    assert "noise between close node counts" in row.basis

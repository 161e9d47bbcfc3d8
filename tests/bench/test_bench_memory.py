"""bench_memory's synthetic fleet is real-shaped and steady (reconciling it writes nothing), its figures reach
the table."""

from __future__ import annotations

import json

import anyio
import pytest

from e2e.bench.bench_memory import NAMESPACE, Fleet, SyntheticApiServer, measure
from e2e.bench.report import memory_rows


def test_the_fleet_renames_every_object_apart() -> None:
    fleet = Fleet(jobs=3, workers=2)
    pods = [json.loads(fleet.pod(i, 100 + i)) for i in range(6)]
    assert len({p["metadata"]["uid"] for p in pods}) == 6
    assert [p["metadata"]["name"] for p in pods[:2]] == ["tj-00000-worker-0", "tj-00000-worker-1"]
    assert pods[3]["metadata"]["labels"]["pyroclast.dev/replica-index"] == "1"
    assert pods[3]["metadata"]["ownerReferences"][0]["name"] == "tj-00001"
    assert pods[0]["metadata"]["managedFields"]  # as the apiserver serves it
    job = json.loads(fleet.job(1, 7))
    assert job["metadata"]["uid"] == pods[2]["metadata"]["ownerReferences"][0]["uid"]
    assert job["spec"]["nodes"]["count"] == 2


def test_a_small_run_caches_everything_and_writes_nothing() -> None:
    figures = anyio.run(measure, 20, 4, 600.0)
    assert figures["writes"] == 0  # steady Running jobs: the fleet is consistent
    assert figures["parsed_models_kept"] == 20
    assert 0 < figures["bytes_per_object"]["pod"] < 2000
    (row,) = memory_rows(figures)
    assert row.ours is not None
    assert row.ours == pytest.approx(figures["rss_mib"] * 2**20 / 1e6)
    # RSS here is the test process's (whatever ran before); the verdict follows it against 250 MB.
    assert row.passed is (row.ours <= 250.0)
    assert row.figure == "P4 RSS MB in process, 20 jobs/80 pods"


async def test_the_synthetic_server_answers_rv0_in_one_body_as_the_watch_cache() -> None:
    server = SyntheticApiServer(Fleet(jobs=600, workers=1))
    path = f"/apis/pyroclast.dev/v1alpha1/namespaces/{NAMESPACE}/torchjobs"
    whole = json.loads(
        (await server.request("GET", path, params={"resourceVersion": "0", "limit": "500"})).body
    )
    assert len(whole["items"]) == 600
    assert "continue" not in whole["metadata"]
    pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
    first = json.loads(
        (await server.request("GET", pods, params={"resourceVersion": "", "limit": "500"})).body
    )
    assert len(first["items"]) == 500
    rest = json.loads((await server.request("GET", pods, params={"limit": "500", "continue": "500"})).body)
    assert len(rest["items"]) == 100
    assert "continue" not in rest["metadata"]


def test_the_informers_list_as_the_operator_does() -> None:
    """TorchJobs, pods and PodGroups list in pages of 500 at "" (the watch cache would answer "0" in one
    body); the namespace's few Services at "0"."""
    figures = anyio.run(measure, 600, 1, 600.0)
    assert figures["list_pages"] == {"torchjobs": 2, "services": 1, "pods": 2, "podgroups": 2}

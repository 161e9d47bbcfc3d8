"""A job's runtime on the fake API server: read once into status.runtime, merged into the pods, never read
again; a missing runtime and a locked-field override are said in the RuntimeResolved condition."""

from __future__ import annotations

import copy
from typing import Any

from controller.torchjob.runtime import RESOLUTIONS
from tests.api.api_cases import base_runtime
from tests.controller.torchjob.reconcilers import JOBS, PODS, job_status, reconcile, setup, sync

RUNTIMES = ("apis/pyroclast.dev/v1alpha1", "clustertorchruntimes")
REF = {"kind": "ClusterTorchRuntime", "name": "gpu"}


def _runtime(generation: int = 1, hca: str = "mlx5") -> dict[str, Any]:
    doc = base_runtime("gpu")
    doc["metadata"]["generation"] = generation
    doc["spec"]["defaults"]["scheduling"] = {"queue": "default"}
    doc["spec"]["defaults"]["env"][0]["value"] = hca
    return doc


def _strip_image(fake: Any) -> None:
    job = copy.deepcopy(fake.objects[JOBS][("team-a", "llama")])
    del job["spec"]["image"]
    fake.put_object(*JOBS, job)


def _runtime_reads(fake: Any) -> int:
    return sum(1 for m, p, _ in fake.requests if m == "GET" and "/clustertorchruntimes/" in p)


def _trainer_env(pod: dict[str, Any]) -> dict[str, str]:
    trainer = next(c for c in pod["spec"]["containers"] if c["name"] == "trainer")
    return {e["name"]: e.get("value", "") for e in trainer["env"]}


async def test_resolved_once_then_merged_into_every_pod() -> None:
    fake, reconciler, _ = setup(runtimeRef=REF, env=[{"name": "NCCL_DEBUG", "value": "INFO"}])
    _strip_image(fake)
    fake.put_object(*RUNTIMES, _runtime())
    before = RESOLUTIONS.labels("RuntimeResolved")._value.get()  # pyright: ignore[reportPrivateUsage]
    sync(fake, reconciler)
    await reconcile(reconciler)
    status = job_status(fake)
    record = status["runtime"]
    assert (record["kind"], record["name"], record["generation"]) == ("ClusterTorchRuntime", "gpu", 1)
    assert record["spec"] == _runtime()["spec"]
    resolved = next(c for c in status["conditions"] if c["type"] == "RuntimeResolved")
    assert resolved["status"] == "True"
    assert f"hash {record['hash']}" in resolved["message"]
    assert RESOLUTIONS.labels("RuntimeResolved")._value.get() == before + 1  # pyright: ignore[reportPrivateUsage]
    assert fake.objects.get(PODS, {}) == {}  # nothing built before the record is written

    fake.put_object(*RUNTIMES, _runtime(generation=2, hca="mlx4"))  # edited after: must change nothing
    for _ in range(4):
        sync(fake, reconciler)
        await reconcile(reconciler)
    pods = list(fake.objects.get(PODS, {}).values())
    assert len(pods) == 2
    for pod in pods:
        env = _trainer_env(pod)
        assert (env["NCCL_IB_HCA"], env["NCCL_DEBUG"]) == ("mlx5", "INFO")
        assert next(c for c in pod["spec"]["containers"] if c["name"] == "trainer")["image"] == (
            "ghcr.io/example/train:1.0"
        )
        assert {"name": "datasets", "persistentVolumeClaim": {"claimName": "datasets"}} in pod["spec"][
            "volumes"
        ]
    assert job_status(fake)["runtime"] == record
    assert _runtime_reads(fake) == 1


async def test_missing_runtime_waits_with_backoff_and_says_so_once() -> None:
    fake, reconciler, _ = setup(runtimeRef=REF)
    sync(fake, reconciler)
    result = await reconcile(reconciler)
    assert result.requeue  # the queue's per-item backoff
    cond = next(c for c in job_status(fake)["conditions"] if c["type"] == "RuntimeResolved")
    assert (cond["status"], cond["reason"]) == ("False", "RuntimeNotFound")
    assert "ClusterTorchRuntime gpu does not exist" in cond["message"]
    assert job_status(fake)["phase"] == "Pending"
    patches = sum(1 for m, p, _ in fake.requests if m == "PATCH" and p.endswith("/status"))
    sync(fake, reconciler)
    assert (await reconcile(reconciler)).requeue
    assert sum(1 for m, p, _ in fake.requests if m == "PATCH" and p.endswith("/status")) == patches
    fake.put_object(*RUNTIMES, _runtime())
    sync(fake, reconciler)
    await reconcile(reconciler)
    cond = next(c for c in job_status(fake)["conditions"] if c["type"] == "RuntimeResolved")
    assert cond["status"] == "True"


async def test_locked_field_override_is_refused_naming_the_field() -> None:
    fake, reconciler, _ = setup(runtimeRef=REF, env=[{"name": "NCCL_IB_HCA", "value": "mlx4"}])
    fake.put_object(*RUNTIMES, _runtime())
    sync(fake, reconciler)
    result = await reconcile(reconciler)
    assert not result.requeue  # waits for the job to change
    status = job_status(fake)
    cond = next(c for c in status["conditions"] if c["type"] == "RuntimeResolved")
    assert (cond["status"], cond["reason"]) == ("False", "RuntimeFieldLocked")
    assert "spec.env[NCCL_IB_HCA] is locked by ClusterTorchRuntime/gpu" in cond["message"]
    assert "runtime" not in status
    assert fake.objects.get(PODS, {}) == {}
    events = list(fake.objects.get(("api/v1", "events"), {}).values())
    assert [(e["type"], e["reason"], e["message"]) for e in events] == [
        ("Warning", "RuntimeFieldLocked", cond["message"])
    ]

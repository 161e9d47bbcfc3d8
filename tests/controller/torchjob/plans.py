"""Builders of TorchJobs, pods and PodGroups at chosen states, and readers of a plan's actions, for the
plan's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from api import Phase, TorchJob
from controller.torchjob.plan import (
    CreateObject,
    DeleteObject,
    Plan,
    plan,
)
from controller.torchjob.pod import desired_worker
from controller.torchjob.service import desired_service

UID = "3f2a9c1e-0b7d-4e21-9a55-6c0d2f1e8b90"


T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def make_job(status: dict[str, Any] | None = None, **spec: Any) -> TorchJob:
    body: dict[str, Any] = {"image": "img:1", "command": ["-m", "train"], "nodes": {"count": 2}, **spec}
    obj: dict[str, Any] = {
        "metadata": {
            "name": "llama",
            "namespace": "team-a",
            "uid": UID,
            "generation": 1,
            "creationTimestamp": "2026-11-23T11:59:00Z",
        },
        "spec": body,
    }
    if status is not None:
        obj["status"] = status
    return TorchJob.model_validate(obj)


def with_status(job: TorchJob, step: Plan) -> TorchJob:
    """The job as the next reconcile sees it once the plan's status was written."""
    return job.model_copy(update={"status": step.status.model_copy(deep=True)})


def pod(
    job: TorchJob,
    index: int,
    *,
    attempt: int = 0,
    phase: str = "Running",
    ready: bool = True,
    exit_code: int | None = None,
    disruption: str | None = None,
    deleting: bool = False,
    message: str | None = None,
) -> dict[str, Any]:
    obj = desired_worker(job, index, attempt)
    obj["metadata"]["uid"] = f"uid-{index}-{attempt}"
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    conditions: list[dict[str, Any]] = [{"type": "Ready", "status": "True" if ready else "False"}]
    if disruption:
        conditions.append({"type": "DisruptionTarget", "status": "True", "reason": disruption})
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if exit_code is not None:
        terminated: dict[str, Any] = {"exitCode": exit_code}
        if message is not None:
            terminated["message"] = message
        status["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
    obj["status"] = status
    return obj


def podgroup(
    job: TorchJob, phase: str = "Inqueue", conditions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    from controller.torchjob.labels import job_labels, owner_reference
    from scheduling import desired_podgroup

    obj = desired_podgroup(job, owner_reference(job), job_labels(job)).to_k8s()
    obj["metadata"]["uid"] = "pg-uid"
    obj["status"] = {"phase": phase, "conditions": conditions or []}
    return obj


def creates(step: Plan, kind: str) -> list[str]:
    return [
        a.body["metadata"]["name"] for a in step.actions if isinstance(a, CreateObject) and a.kind == kind
    ]


def deletes(step: Plan, kind: str) -> list[str]:
    return [a.name for a in step.actions if isinstance(a, DeleteObject) and a.kind == kind]


def running_job(**spec: Any) -> tuple[TorchJob, dict[str, Any], dict[str, Any]]:
    """A job in Running with its PodGroup and Service, as two reconciles leave it."""
    job = make_job(**spec)
    pg, svc = podgroup(job, "Running"), desired_service(job)
    first = plan(job, None, [], None, T0)
    job = with_status(job, first)
    count = job.spec.nodes.count
    step = plan(job, pg, [pod(job, i) for i in range(count)], svc, T0 + timedelta(seconds=5))
    assert step.status.phase == Phase.RUNNING
    return with_status(job, step), pg, svc


def resize(job: TorchJob, count: int) -> TorchJob:
    nodes = job.spec.nodes.model_copy(update={"count": count})
    return job.model_copy(update={"spec": job.spec.model_copy(update={"nodes": nodes})})


PHASES = st.sampled_from(["Pending", "Running", "Succeeded", "Failed"])

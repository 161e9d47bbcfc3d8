"""The API models: defaults, wire round trips, snake_case construction, helpers, the Volcano objects."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

import api
from api import (
    Condition,
    ConditionStatus,
    Nodes,
    Phase,
    PodGroup,
    Queue,
    QueueState,
    TorchJob,
    TorchJobSpec,
    TorchJobStatus,
    is_reserved_env,
)
from api.duration import duration_seconds
from api.quantity import parse_quantity

MINIMAL: dict[str, Any] = {
    "apiVersion": "pyroclast.dev/v1alpha1",
    "kind": "TorchJob",
    "metadata": {"name": "mini", "namespace": "ml"},
    "spec": {"image": "img:1", "command": ["train.py"]},
}


def test_minimal_job_gets_every_default() -> None:
    assert TorchJob.model_validate(MINIMAL).to_k8s()["spec"] == {
        "image": "img:1",
        "command": ["train.py"],
        "nprocPerNode": "auto",
        "nodes": {"count": 1},
        "scheduling": {"queue": "default", "preemptible": False},
        "rendezvous": {
            "joinTimeout": "10m",
            "lastCallTimeout": "10s",
            "closeTimeout": "30s",
            "readTimeout": "5m",
            "keepAliveInterval": "5s",
            "keepAliveMaxAttempts": 3,
            "maxRestarts": 3,
            "port": 29400,
        },
        "failurePolicy": {"maxFailureRestarts": 3, "maxPreemptionRestarts": 20},
        "runPolicy": {"suspend": False, "cleanPodPolicy": "Running"},
        "successPolicy": "AllWorkers",
        "sharedMemory": {"enabled": True},
    }


def apiserver_object() -> dict[str, Any]:
    """A TorchJob as the apiserver returns it: defaults applied, server metadata, a status."""
    doc = TorchJob.model_validate(MINIMAL).to_k8s()
    doc["metadata"].update(
        {
            "uid": "0b9f5c2e-1111-2222-3333-444455556666",
            "resourceVersion": "812",
            "generation": 2,
            "creationTimestamp": "2026-11-23T10:00:00Z",
            "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "apiVersion": "pyroclast.dev/v1alpha1"}
            ],
        }
    )
    doc["status"] = {
        "phase": "Running",
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "AllNodesReady",
                "message": "2/2 nodes ready",
                "lastTransitionTime": "2026-11-23T10:01:00Z",
                "observedGeneration": 2,
            }
        ],
        "observedGeneration": 2,
        "desiredNodes": 2,
        "activeNodes": 2,
        "readyNodes": 2,
        "worldSize": 16,
        "selector": "pyroclast.dev/job-name=mini",
        "failureRestarts": 1,
        "preemptionRestarts": 2,
        "lastDisruptionReason": "PreemptedByScheduler",
        "lastDisruptionTime": "2026-11-23T10:30:00Z",
        "lastCheckpoint": {"step": 1200, "time": "2026-11-23T10:29:00Z", "path": "step-000000001200"},
        "progress": {"step": 1234, "totalSteps": 10000, "loss": 1.25, "updatedTime": "2026-11-23T10:31:00Z"},
        "startTime": "2026-11-23T10:00:30Z",
        "podGroupName": "mini-0b9f5c2e",
    }
    return doc


def test_apiserver_json_round_trips() -> None:
    doc = apiserver_object()
    job = TorchJob.model_validate(doc)
    assert job.to_k8s() == doc
    assert job.model_dump(by_alias=True, exclude_none=True, mode="json") == doc
    assert TorchJob.from_k8s(doc) == job


def test_status_fields_parse() -> None:
    status = TorchJob.model_validate(apiserver_object()).status
    assert status is not None
    assert status.phase is Phase.RUNNING
    assert not status.phase.finished
    assert status.last_checkpoint is not None
    assert status.last_checkpoint.step == 1200
    assert status.progress is not None
    assert status.progress.loss == 1.25
    assert status.start_time == datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
    running = status.condition("Running")
    assert running is not None
    assert running.status is ConditionStatus.TRUE
    assert status.condition("Failed") is None


def test_snake_case_construction_matches_wire_form() -> None:
    spec = TorchJobSpec(
        image="img:1",
        command=["-m", "w"],
        nproc_per_node=4,
        nodes=Nodes(count=4, min=2, max=8),
    )
    job = TorchJob(metadata=api.ObjectMeta(name="snake"), spec=spec)
    wire = job.to_k8s()
    assert wire["spec"]["nprocPerNode"] == 4
    assert wire["spec"]["nodes"] == {"count": 4, "min": 2, "max": 8}
    assert TorchJob.model_validate(wire) == job


def test_assignment_is_validated() -> None:
    job = TorchJob.model_validate(MINIMAL)
    with pytest.raises(ValidationError):
        job.spec.nodes.count = 0
    job.spec.nodes.count = 3
    assert job.to_k8s()["spec"]["nodes"]["count"] == 3


@pytest.mark.parametrize(
    ("metadata", "ok"),
    [
        ({"name": "a" * 48}, True),
        ({"name": "a" * 49}, False),
        ({"name": "9lives"}, False),
        ({"name": "has.dot"}, False),
        ({"generateName": "train-"}, True),
        ({"generateName": "t" * 43}, True),
        ({"generateName": "t" * 44}, False),
        ({"generateName": "7-"}, False),
    ],
)
def test_job_names_fit_pod_and_service_names(metadata: dict[str, str], ok: bool) -> None:
    doc = {**MINIMAL, "metadata": metadata}
    if ok:
        TorchJob.model_validate(doc)
    else:
        with pytest.raises(ValidationError, match=r"metadata\.name must start with a letter"):
            TorchJob.model_validate(doc)


def test_unknown_spec_fields_are_refused() -> None:
    doc = {**MINIMAL, "spec": {**MINIMAL["spec"], "replicas": 2}}
    with pytest.raises(ValidationError, match="replicas"):
        TorchJob.model_validate(doc)


def test_nodes_helpers() -> None:
    fixed = Nodes(count=4)
    elastic = Nodes(count=4, min=2, max=8)
    assert (fixed.elastic, fixed.min_nodes, fixed.max_nodes) == (False, 4, 4)
    assert (elastic.elastic, elastic.min_nodes, elastic.max_nodes) == (True, 2, 8)
    assert not Nodes(count=3, min=3, max=3).elastic


def _job(**spec: Any) -> TorchJob:
    return TorchJob.model_validate({**MINIMAL, "spec": {**MINIMAL["spec"], **spec}})


@pytest.mark.parametrize(
    ("old", "new", "errors"),
    [
        ({}, {"image": "img:2"}, ["image and nprocPerNode can only change while the job is suspended"]),
        ({"runPolicy": {"suspend": True}}, {"image": "img:2", "nprocPerNode": 2}, []),
        ({}, {"nprocPerNode": "gpu"}, ["image and nprocPerNode can only change while the job is suspended"]),
        ({"nodes": {"count": 4, "min": 2, "max": 8}}, {"nodes": {"count": 8, "min": 2, "max": 8}}, []),
        (
            {"nodes": {"count": 4, "min": 2, "max": 8}},
            {"nodes": {"count": 4, "min": 3, "max": 8}},
            ["nodes.min is immutable"],
        ),
        (
            {"nodes": {"count": 4}},
            {"nodes": {"count": 4, "min": 1, "max": 4}},
            ["nodes.min is immutable", "nodes.max is immutable"],
        ),
        ({"nodes": {"count": 4}}, {"nodes": {"count": 2}}, []),
        ({}, {"scheduling": {"queue": "other"}}, ["scheduling.queue is immutable"]),
        (
            {"checkpoint": {"volume": {"emptyDir": {}}}},
            {"checkpoint": {"volume": {"emptyDir": {}}, "path": "/x"}},
            ["checkpoint.path is immutable"],
        ),
        ({}, {"args": ["--more"], "env": [{"name": "X", "value": "1"}]}, []),
    ],
)
def test_update_rules(old: dict[str, Any], new: dict[str, Any], errors: list[str]) -> None:
    assert _job(**new).update_errors(_job(**old)) == errors


def test_reserved_env_names() -> None:
    assert "PET_" in api.RESERVED_ENV_PREFIXES
    assert "MASTER_ADDR" in api.RESERVED_ENV_NAMES
    for name in ("PET_NNODES", "TORCHELASTIC_RUN_ID", "PYROCLAST_CHECKPOINT_DIR", "RANK", "WORLD_SIZE"):
        assert is_reserved_env(name), name
    for name in ("NCCL_DEBUG", "RANKS", "PETS", "OMP_NUM_THREADS"):
        assert not is_reserved_env(name), name


def test_constants() -> None:
    assert (api.GROUP, api.VERSION, api.KIND, api.PLURAL) == (
        "pyroclast.dev",
        "v1alpha1",
        "TorchJob",
        "torchjobs",
    )
    assert api.API_VERSION == "pyroclast.dev/v1alpha1"
    assert api.CRD_NAME == "torchjobs.pyroclast.dev"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (8, Decimal(8)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("2Gi", Decimal(2 * 1024**3)),
        ("100M", Decimal(100 * 10**6)),
        ("1e3", Decimal(1000)),
        ("250n", Decimal("0.00000025")),
    ],
)
def test_parse_quantity(text: int | str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_parse_quantity_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not a resource quantity"):
        parse_quantity("lots")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h30m", 5400),
        ("250ms", Decimal("0.25")),
        ("0.5s", Decimal("0.5")),
        ("0s", 0),
    ],
)
def test_duration_seconds(text: str, seconds: int | Decimal) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["5", "-1s", "1d", "1 h", ""])
def test_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds(text)


def test_status_defaults_and_condition_shape() -> None:
    status = TorchJobStatus()
    assert (status.failure_restarts, status.preemption_restarts) == (0, 0)
    cond = Condition(
        type="Queued",
        status=ConditionStatus.FALSE,
        reason="PodGroupPending",
        last_transition_time=datetime.now(UTC),
    )
    assert cond.to_k8s()["message"] == ""
    with pytest.raises(ValidationError):
        Condition(
            type="Queued",
            status=ConditionStatus.TRUE,
            reason="bad reason!",
            last_transition_time=datetime.now(UTC),
        )


def test_podgroup_round_trips_volcano_json() -> None:
    doc: dict[str, Any] = {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "PodGroup",
        "metadata": {
            "name": "job-abc",
            "namespace": "default",
            "ownerReferences": [
                {
                    "apiVersion": "pyroclast.dev/v1alpha1",
                    "kind": "TorchJob",
                    "name": "job",
                    "uid": "u1",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "minMember": 2,
            "minTaskMember": {"worker": 2},
            "queue": "team-a",
            "priorityClassName": "train-high",
            "minResources": {"cpu": "8", "nvidia.com/gpu": 16},
            "networkTopology": {"mode": "hard", "highestTierAllowed": 1},
        },
        "status": {
            "phase": "Inqueue",
            "conditions": [
                {
                    "type": "Scheduled",
                    "status": "True",
                    "transitionID": "t-1",
                    "lastTransitionTime": "2026-11-23T10:00:00Z",
                    "reason": "tasks in gang are ready to be scheduled",
                }
            ],
            "running": 2,
        },
    }
    pg = PodGroup.model_validate(doc)
    assert pg.spec.min_member == 2
    assert pg.spec.queue == "team-a"
    assert pg.status is not None
    assert pg.status.conditions is not None
    assert pg.status.conditions[0].transition_id == "t-1"
    assert pg.to_k8s() == doc


def test_podgroup_defaults() -> None:
    assert PodGroup(metadata=api.ObjectMeta(name="pg")).to_k8s() == {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "PodGroup",
        "metadata": {"name": "pg"},
        "spec": {"minMember": 1, "queue": "default"},
    }


def test_queue_round_trips_volcano_json() -> None:
    doc: dict[str, Any] = {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "Queue",
        "metadata": {"name": "team-a"},
        "spec": {
            "weight": 1,
            "reclaimable": True,
            "parent": "root",
            "capability": {"cpu": "8", "memory": "16Gi"},
            "guarantee": {"resource": {"cpu": "2"}},
            "deserved": {"cpu": "4"},
        },
        "status": {"state": "Open", "allocated": {"cpu": "0"}},
    }
    queue = Queue.model_validate(doc)
    assert queue.status is not None
    assert queue.status.state is QueueState.OPEN
    assert queue.to_k8s() == doc
    with pytest.raises(ValidationError):
        Queue.model_validate({**doc, "spec": {"weight": 0}})

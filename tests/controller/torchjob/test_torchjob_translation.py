"""TorchJob -> PodGroup, worker pods and Service: pure translation, checked field by field and by property."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import TorchJob, contract, is_reserved_env
from api.podgroup import GROUP_NAME_ANNOTATION, PREEMPTABLE_ANNOTATION, TASK_SPEC_KEY
from controller.torchjob.env import rendezvous_id
from controller.torchjob.labels import (
    ATTEMPT_LABEL,
    JOB_NAME_LABEL,
    REPLICA_INDEX_LABEL,
    job_labels,
    owner_reference,
    worker_selector,
)
from controller.torchjob.pod import desired_worker, rendezvous_endpoint
from controller.torchjob.service import desired_service
from scheduling import desired_podgroup, format_quantity, podgroup_name, podgroup_spec_patch

UID = "3f2a9c1e-0b7d-4e21-9a55-6c0d2f1e8b90"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def make_job(**spec: Any) -> TorchJob:
    body: dict[str, Any] = {"image": "ghcr.io/example/train:1", "command": ["-m", "workloads.train"], **spec}
    return TorchJob.model_validate(
        {"metadata": {"name": "llama", "namespace": "team-a", "uid": UID, "generation": 1}, "spec": body}
    )


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}


# --- PodGroup -------------------------------------------------------------------------------------------


def test_podgroup_name_is_unique_per_uid() -> None:
    job = make_job()
    other = job.model_copy(update={"metadata": job.metadata.model_copy(update={"uid": "9" + UID[1:]})})
    assert podgroup_name(job) == "llama-3f2a9c1e"
    assert podgroup_name(other) != podgroup_name(job)


def test_podgroup_of_fixed_job_gangs_every_node_with_extended_resources() -> None:
    job = make_job(
        nodes={"count": 4},
        resources={
            "requests": {"cpu": "500m", "memory": "16Gi"},
            "limits": {"nvidia.com/gpu": 8, "cpu": "1"},
        },
        scheduling={"queue": "research", "priorityClassName": "high"},
    )
    pg = desired_podgroup(job, owner_reference(job), job_labels(job))
    assert pg.metadata.name == podgroup_name(job)
    assert pg.metadata.namespace == "team-a"
    assert pg.spec.min_member == 4
    assert pg.spec.queue == "research"
    assert pg.spec.priority_class_name == "high"
    # No minResources: the enqueue gate would keep a preemptor Pending on a full cluster (see podgroup.py).
    assert pg.spec.min_resources is None
    assert "minResources" not in pg.spec.to_k8s()
    owner = (pg.metadata.owner_references or [])[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("TorchJob", "llama", UID, True)
    assert pg.metadata.labels == {JOB_NAME_LABEL: "llama", "app.kubernetes.io/managed-by": "pyroclast"}


def test_podgroup_of_elastic_job_gangs_the_minimum() -> None:
    job = make_job(nodes={"count": 4, "min": 2, "max": 8}, resources={"limits": {"nvidia.com/gpu": 1}})
    pg = desired_podgroup(job, owner_reference(job), {})
    assert pg.spec.min_member == 2
    assert pg.spec.min_resources is None


def test_podgroup_patch_touches_only_changed_owned_fields() -> None:
    job = make_job(nodes={"count": 2}, scheduling={"priorityClassName": "low"})
    desired = desired_podgroup(job, owner_reference(job), {})
    current = {
        "spec": {**desired.spec.to_k8s(), "minTaskMember": {"worker": 2}},
        "status": {"phase": "Running", "running": 2},
    }
    assert podgroup_spec_patch(current, desired) is None
    current["spec"]["minMember"] = 1
    current["spec"]["priorityClassName"] = "other"
    assert podgroup_spec_patch(current, desired) == {"spec": {"minMember": 2, "priorityClassName": "low"}}


def test_podgroup_patch_removes_a_stale_priority() -> None:
    job = make_job()
    desired = desired_podgroup(job, owner_reference(job), {})
    current = {"spec": {**desired.spec.to_k8s(), "priorityClassName": "high"}}
    assert podgroup_spec_patch(current, desired) == {"spec": {"priorityClassName": None}}


@pytest.mark.parametrize(
    ("wanted", "wire"),
    [
        ({"highestTierAllowed": 1}, {"mode": "hard", "highestTierAllowed": 1}),
        ({"mode": "hard", "highestTierAllowed": 2}, {"mode": "hard", "highestTierAllowed": 2}),
        ({"mode": "soft"}, {"mode": "soft"}),
        ({"mode": "soft", "highestTierAllowed": 3}, {"mode": "soft", "highestTierAllowed": 3}),
    ],
)
def test_podgroup_carries_the_network_topology(wanted: dict[str, Any], wire: dict[str, Any]) -> None:
    job = make_job(scheduling={"networkTopology": wanted})
    spec = desired_podgroup(job, owner_reference(job), {}).to_k8s()["spec"]
    assert spec["networkTopology"] == wire


def test_podgroup_without_network_topology_has_none() -> None:
    job = make_job()
    assert "networkTopology" not in desired_podgroup(job, owner_reference(job), {}).to_k8s()["spec"]


def test_podgroup_patch_follows_a_network_topology_change() -> None:
    job = make_job(scheduling={"networkTopology": {"highestTierAllowed": 1}})
    desired = desired_podgroup(job, owner_reference(job), {})
    current = {"spec": desired.spec.to_k8s()}
    assert podgroup_spec_patch(current, desired) is None
    wider = make_job(scheduling={"networkTopology": {"highestTierAllowed": 2}})
    patch = podgroup_spec_patch(current, desired_podgroup(wider, owner_reference(wider), {}))
    assert patch == {"spec": {"networkTopology": {"mode": "hard", "highestTierAllowed": 2}}}
    plain = make_job()
    patch = podgroup_spec_patch(current, desired_podgroup(plain, owner_reference(plain), {}))
    assert patch == {"spec": {"networkTopology": None}}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal(8), "8"),
        (Decimal(0), "0"),
        (Decimal("0.5"), "500m"),
        (Decimal("1.5"), "1500m"),
        (Decimal("0.0005"), "500000n"),
        (Decimal("1e-10"), "1n"),
        (Decimal(17179869184), "17179869184"),
    ],
)
def test_format_quantity(value: Decimal, text: str) -> None:
    assert format_quantity(value) == text


def test_format_quantity_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_quantity(Decimal(-1))


# --- worker pods ----------------------------------------------------------------------------------------


def test_worker_carries_every_volcano_marker() -> None:
    job = make_job(nodes={"count": 3}, scheduling={"priorityClassName": "high", "preemptible": True})
    pod = desired_worker(job, 1, attempt=0)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "llama-worker-1"
    assert meta["namespace"] == "team-a"
    assert spec["schedulerName"] == "volcano"
    assert meta["annotations"][GROUP_NAME_ANNOTATION] == podgroup_name(job)
    assert meta["annotations"][TASK_SPEC_KEY] == "worker"
    assert meta["annotations"][PREEMPTABLE_ANNOTATION] == "true"
    assert spec["priorityClassName"] == "high"
    assert spec["restartPolicy"] == "Never"
    assert (spec["hostname"], spec["subdomain"]) == ("llama-worker-1", "pyroclast-workers")
    assert meta["labels"][JOB_NAME_LABEL] == "llama"
    assert meta["labels"][REPLICA_INDEX_LABEL] == "1"
    assert meta["labels"][ATTEMPT_LABEL] == "0"
    assert meta["ownerReferences"] == [owner_reference(job).to_k8s()]
    assert spec["automountServiceAccountToken"] is False


def test_not_preemptible_job_protects_its_pods() -> None:
    pod = desired_worker(make_job(), 0, attempt=0)
    assert pod["metadata"]["annotations"][PREEMPTABLE_ANNOTATION] == "false"
    assert "priorityClassName" not in pod["spec"]


def test_trainer_runs_torchrun_with_the_launcher_env() -> None:
    job = make_job(nodes={"count": 2}, nprocPerNode=4, args=["--lr", "0.1"], rendezvous={"maxRestarts": 5})
    pod = desired_worker(job, 1, attempt=2)
    trainer = pod["spec"]["containers"][0]
    assert trainer["name"] == "trainer"
    assert trainer["command"] == ["torchrun", "-m", "workloads.train"]
    assert trainer["args"] == ["--lr", "0.1"]
    env = env_of(pod)
    assert env[contract.PET_NNODES] == "2:2"
    assert env[contract.PET_NPROC_PER_NODE] == "4"
    assert env[contract.PET_RDZV_BACKEND] == "c10d"
    assert env[contract.PET_RDZV_ENDPOINT] == "llama-worker-0.pyroclast-workers.team-a.svc:29400"
    assert env[contract.PET_RDZV_ID] == f"{UID}-2"
    assert env[contract.PET_MAX_RESTARTS] == "5"
    assert env[contract.PET_LOCAL_ADDR] == "llama-worker-1.pyroclast-workers.team-a.svc"
    assert env[contract.TERMINATION_LOG] == trainer["terminationMessagePath"] == "/dev/termination-log"
    assert contract.TORCH_DISABLE_SHARE_RDZV_TCP_STORE not in env
    conf = dict(kv.split("=") for kv in env[contract.PET_RDZV_CONF].split(","))
    assert conf == {
        "join_timeout": "600",
        "last_call_timeout": "10",
        "close_timeout": "30",
        "read_timeout": "300",
        "keep_alive_interval": "5",
        "keep_alive_max_attempt": "3",
        "is_host": "0",
    }


def test_only_worker_zero_hosts_the_rendezvous() -> None:
    job = make_job(nodes={"count": 3})
    hosts = [
        dict(kv.split("=") for kv in env_of(desired_worker(job, i, 0))[contract.PET_RDZV_CONF].split(","))[
            "is_host"
        ]
        for i in range(3)
    ]
    assert hosts == ["1", "0", "0"]
    assert rendezvous_endpoint(job).startswith("llama-worker-0.")


def test_each_gang_attempt_gets_a_fresh_rendezvous_id() -> None:
    job = make_job()
    ids = {env_of(desired_worker(job, 0, attempt))[contract.PET_RDZV_ID] for attempt in range(3)}
    assert ids == {rendezvous_id(job, a) for a in range(3)}
    assert len(ids) == 3


def test_elastic_job_gets_min_max_and_its_own_trainer_store() -> None:
    env = env_of(desired_worker(make_job(nodes={"count": 3, "min": 2, "max": 6}), 0, 0))
    assert env[contract.PET_NNODES] == "2:6"
    assert env[contract.TORCH_DISABLE_SHARE_RDZV_TCP_STORE] == "1"


def test_checkpoint_volume_is_mounted_and_handed_to_the_workload() -> None:
    job = make_job(
        checkpoint={
            "volume": {"persistentVolumeClaim": {"claimName": "ckpt"}},
            "intervalSteps": 50,
            "keep": 2,
        }
    )
    pod = desired_worker(job, 0, 0)
    assert {"name": "pyroclast-checkpoint", "persistentVolumeClaim": {"claimName": "ckpt"}} in pod["spec"][
        "volumes"
    ]
    assert {"name": "pyroclast-checkpoint", "mountPath": "/checkpoints"} in pod["spec"]["containers"][0][
        "volumeMounts"
    ]
    env = env_of(pod)
    assert env[contract.CHECKPOINT_DIR] == "/checkpoints"
    assert env[contract.CHECKPOINT_INTERVAL] == "50"
    assert env[contract.CHECKPOINT_KEEP] == "2"


def test_job_without_checkpoint_has_no_checkpoint_env_or_volume() -> None:
    pod = desired_worker(make_job(), 0, 0)
    assert "pyroclast-checkpoint" not in {v["name"] for v in pod["spec"]["volumes"]}
    assert not any(k.startswith("PYROCLAST_CHECKPOINT") for k in env_of(pod))


def test_overlay_adds_to_our_markers() -> None:
    job = make_job(
        template={
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "spec": {
                "serviceAccountName": "trainer",
                "nodeSelector": {"pool": "gpu"},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "sidecars": [{"name": "logger", "image": "busybox"}],
                "terminationGracePeriodSeconds": 600,
            },
        },
        env=[{"name": "NCCL_DEBUG", "value": "INFO"}],
    )
    pod = desired_worker(job, 0, 0)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"]["team"] == "a"
    assert meta["labels"][JOB_NAME_LABEL] == "llama"
    assert meta["annotations"]["note"] == "x"
    assert meta["annotations"][GROUP_NAME_ANNOTATION] == podgroup_name(job)
    assert spec["serviceAccountName"] == "trainer"
    assert "automountServiceAccountToken" not in spec
    assert spec["nodeSelector"] == {"pool": "gpu"}
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["volumes"] == [
        {"name": "pyroclast-shm", "emptyDir": {"medium": "Memory"}},
        {"name": "data", "emptyDir": {}},
    ]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "pyroclast-shm", "mountPath": "/dev/shm"},
        {"name": "data", "mountPath": "/data"},
    ]
    assert [c["name"] for c in spec["containers"]] == ["trainer", "logger"]
    assert spec["terminationGracePeriodSeconds"] == 600
    assert env_of(pod)["NCCL_DEBUG"] == "INFO"


def test_resources_pass_through_to_the_trainer() -> None:
    job = make_job(resources={"limits": {"nvidia.com/gpu": 8, "cpu": "32"}})
    assert desired_worker(job, 0, 0)["spec"]["containers"][0]["resources"] == {
        "limits": {"nvidia.com/gpu": 8, "cpu": "32"}
    }


# --- Service --------------------------------------------------------------------------------------------


def test_service_is_headless_and_selects_the_workers() -> None:
    job = make_job(rendezvous={"port": 29500})
    svc = desired_service(job)
    assert svc["metadata"]["name"] == "pyroclast-workers"  # one per namespace, shared by its jobs
    assert svc["metadata"]["namespace"] == job.metadata.namespace
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert "ownerReferences" not in svc["metadata"]  # outlives any one job
    pod = desired_worker(job, 0, 0)
    assert all(pod["metadata"]["labels"][k] == v for k, v in svc["spec"]["selector"].items())
    assert pod["spec"]["subdomain"] == svc["metadata"]["name"]
    assert pod["spec"]["hostname"] == pod["metadata"]["name"]
    key, value = worker_selector(job).split("=")
    assert pod["metadata"]["labels"][key] == value


# --- properties -----------------------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,46}[a-z0-9]", fullmatch=True)


@st.composite
def jobs(draw: st.DrawFn) -> TorchJob:
    count = draw(st.integers(1, 64))
    nodes: dict[str, int] = {"count": count}
    if draw(st.booleans()):
        nodes["min"] = draw(st.integers(1, count))
        nodes["max"] = draw(st.integers(count, 4096))
    user_env = [{"name": f"USER_{i}", "value": str(i)} for i in range(draw(st.integers(0, 3)))]
    spec: dict[str, Any] = {
        "nodes": nodes,
        "nprocPerNode": draw(st.one_of(st.integers(1, 8), st.sampled_from(["auto", "gpu", "cpu"]))),
        "env": user_env or None,
        "resources": {
            "limits": {"nvidia.com/gpu": draw(st.integers(0, 8)), "cpu": f"{draw(st.integers(1, 999))}m"}
        },
    }
    if draw(st.booleans()):
        spec["checkpoint"] = {"volume": {"emptyDir": {}}, "intervalSteps": draw(st.integers(1, 1000))}
    job = make_job(**{k: v for k, v in spec.items() if v is not None})
    name = draw(NAMES)
    return job.model_copy(update={"metadata": job.metadata.model_copy(update={"name": name})})


@settings(max_examples=150, deadline=None)
@given(jobs(), st.integers(0, 100))
def test_every_worker_is_valid_and_in_the_gang(job: TorchJob, attempt: int) -> None:
    pg = desired_podgroup(job, owner_reference(job), job_labels(job))
    assert 1 <= pg.spec.min_member <= job.spec.nodes.count
    for index in {0, job.spec.nodes.count - 1}:
        pod = desired_worker(job, index, attempt)
        name = pod["metadata"]["name"]
        assert len(name) <= 63
        assert DNS_LABEL.match(name)
        assert pod["metadata"]["annotations"][GROUP_NAME_ANNOTATION] == pg.metadata.name
        env = pod["spec"]["containers"][0]["env"]
        names = [e["name"] for e in env]
        assert len(names) == len(set(names)), "an env name appears twice"
        user = [n for n in names if n.startswith("USER_")]
        assert not any(is_reserved_env(n) for n in user)
        assert env_of(pod)[contract.PET_RDZV_ID].endswith(f"-{attempt}")

"""An elastic job's dedicated rendezvous store: pod and Service builders, env, and its life in the plan."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api import Phase, contract
from api.podgroup import GROUP_NAME_ANNOTATION, PREEMPTABLE_ANNOTATION, SCHEDULER_NAME
from controller.torchjob.labels import JOB_NAME_LABEL, REPLICA_INDEX_LABEL
from controller.torchjob.observe import observe_worker
from controller.torchjob.plan import CreateObject, plan
from controller.torchjob.pod import desired_worker
from controller.torchjob.rendezvous import (
    RENDEZVOUS_LABEL,
    desired_rendezvous_pod,
    desired_rendezvous_podgroup,
    desired_rendezvous_service,
    store_endpoint,
)
from controller.torchjob.service import desired_service
from tests.controller.torchjob.plans import (
    T0,
    creates,
    deletes,
    make_job,
    pod,
    podgroup,
    with_status,
)

ELASTIC: dict[str, Any] = {"nodes": {"count": 3, "min": 2, "max": 4}}


def env_of(body: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in body["spec"]["containers"][0]["env"]}


def conf_of(body: dict[str, Any]) -> dict[str, str]:
    return dict(kv.split("=") for kv in env_of(body)[contract.PET_RDZV_CONF].split(","))


def store_pod(job: Any, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    obj = desired_rendezvous_pod(job)
    obj["metadata"]["uid"] = "store-uid"
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    obj["status"] = {"phase": phase}
    return obj


def test_elastic_workers_dial_the_dedicated_store_and_none_hosts_it() -> None:
    job = make_job(**ELASTIC)
    for index in range(3):
        body = desired_worker(job, index, attempt=1)
        assert env_of(body)[contract.PET_RDZV_ENDPOINT] == "llama-rdzv.team-a.svc:29400"
        assert conf_of(body)["is_host"] == "0"
    assert store_endpoint(job) == "llama-rdzv.team-a.svc:29400"


def test_fixed_size_gang_keeps_worker_zero_as_host() -> None:
    job = make_job(nodes={"count": 2})
    assert [conf_of(desired_worker(job, i, 0))["is_host"] for i in range(2)] == ["1", "0"]
    endpoint = env_of(desired_worker(job, 1, 0))[contract.PET_RDZV_ENDPOINT]
    assert endpoint.startswith("llama-worker-0.pyroclast-workers.")


def test_store_pod_is_cpu_only_outside_the_gang_in_the_jobs_queue_and_never_preempted() -> None:
    job = make_job(
        **ELASTIC,
        resources={"limits": {"nvidia.com/gpu": 8}},
        scheduling={"queue": "research", "priorityClassName": "high", "preemptible": True},
        template={"spec": {"nodeSelector": {"pool": "a"}, "tolerations": [{"operator": "Exists"}]}},
        rendezvous={"port": 29500},
    )
    body = desired_rendezvous_pod(job)
    meta, spec = body["metadata"], body["spec"]
    assert meta["name"] == "llama-rendezvous"
    assert meta["labels"][RENDEZVOUS_LABEL] == "llama"
    # not a worker: the scale selector, the workers' Service and the plan's worker view ignore it
    assert JOB_NAME_LABEL not in meta["labels"]
    assert REPLICA_INDEX_LABEL not in meta["labels"]
    assert observe_worker({**body, "status": {"phase": "Running"}}) is None
    assert meta["annotations"] == {GROUP_NAME_ANNOTATION: "llama-rendezvous", PREEMPTABLE_ANNOTATION: "false"}
    assert meta["ownerReferences"][0]["uid"] == job.metadata.uid
    assert spec["schedulerName"] == SCHEDULER_NAME
    assert spec["restartPolicy"] == "Never"
    assert spec["priorityClassName"] == "high"
    assert spec["automountServiceAccountToken"] is False
    assert spec["nodeSelector"] == {"pool": "a"}
    assert spec["tolerations"] == [{"operator": "Exists"}]
    (container,) = spec["containers"]
    assert container["image"] == "img:1"
    assert container["command"] == ["python", "-m", "workloads.rendezvous", "--port", "29500"]
    assert "nvidia.com/gpu" not in str(container["resources"])
    assert container["readinessProbe"] == {"tcpSocket": {"port": 29500}, "periodSeconds": 5}


def test_store_has_a_one_member_gang_of_its_own_in_the_jobs_queue() -> None:
    job = make_job(**ELASTIC, scheduling={"queue": "research", "priorityClassName": "high"})
    pg = desired_rendezvous_podgroup(job)
    assert pg["metadata"]["name"] == "llama-rendezvous"
    assert pg["metadata"]["ownerReferences"][0]["uid"] == job.metadata.uid
    assert pg["spec"] == {"minMember": 1, "queue": "research", "priorityClassName": "high"}


def test_store_service_selects_only_the_store() -> None:
    job = make_job(**ELASTIC)
    svc = desired_rendezvous_service(job)
    assert svc["metadata"]["name"] == "llama-rdzv"
    assert svc["spec"]["selector"] == {RENDEZVOUS_LABEL: "llama"}
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["ports"][0]["port"] == 29400
    assert RENDEZVOUS_LABEL not in desired_service(job)["spec"]["selector"]


def test_elastic_job_creates_store_service_and_pod_before_its_workers() -> None:
    step = plan(make_job(**ELASTIC), None, [], None, T0)
    kinds = [(a.kind, a.body["metadata"]["name"]) for a in step.actions if isinstance(a, CreateObject)]
    assert kinds[:5] == [
        ("PodGroup", kinds[0][1]),
        ("Service", "pyroclast-workers"),
        ("Service", "llama-rdzv"),
        ("PodGroup", "llama-rendezvous"),
        ("Pod", "llama-rendezvous"),
    ]
    assert [name for _, name in kinds[5:]] == ["llama-worker-0", "llama-worker-1", "llama-worker-2"]
    assert step.status.desired_nodes == 3
    assert step.status.active_nodes == 3  # the store is not a node


def test_fixed_size_job_has_no_store() -> None:
    step = plan(make_job(), None, [], None, T0)
    assert "llama-rendezvous" not in creates(step, "Pod")
    assert creates(step, "Service") == ["pyroclast-workers"]
    assert len(creates(step, "PodGroup")) == 1


def elastic_running() -> tuple[Any, dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    job = make_job(**ELASTIC)
    job = with_status(job, plan(job, None, [], None, T0))
    pg, svc = podgroup(job, "Running"), desired_service(job)
    store_pg = {**desired_rendezvous_podgroup(job), "status": {"phase": "Running"}}
    store_pg["metadata"]["uid"] = "store-pg-uid"
    others = [desired_rendezvous_service(job), store_pg]
    pods = [pod(job, i) for i in range(3)] + [store_pod(job)]
    step = plan(job, pg, pods, svc, T0 + timedelta(seconds=5), rendezvous_objects=others)
    assert step.status.phase == Phase.RUNNING
    assert step.actions == []
    return with_status(job, step), pg, svc, others


def test_running_store_is_left_alone_and_a_lost_one_is_replaced() -> None:
    job, pg, svc, others = elastic_running()
    workers = [pod(job, i) for i in range(3)]
    failed = plan(job, pg, [*workers, store_pod(job, "Failed")], svc, T0, rendezvous_objects=others)
    assert deletes(failed, "Pod") == ["llama-rendezvous"]
    assert deletes(failed, "PodGroup") == []  # the replacement joins the same one-member gang
    assert creates(failed, "Pod") == []  # the same name is free only once the old pod is gone
    gone = plan(job, pg, workers, svc, T0, rendezvous_objects=others)
    assert creates(gone, "Pod") == ["llama-rendezvous"]
    going = plan(job, pg, [*workers, store_pod(job, "Failed", True)], svc, T0, rendezvous_objects=others)
    assert going.actions == []


def test_suspended_or_finished_job_frees_its_store() -> None:
    job, pg, svc, others = elastic_running()
    suspended = job.model_copy(update={"spec": job.spec.model_copy(update={"run_policy": _suspend(job)})})
    step = plan(suspended, pg, [pod(job, i) for i in range(3)] + [store_pod(job)], svc, T0, (), others)
    assert step.status.phase == Phase.SUSPENDED
    assert "llama-rendezvous" in deletes(step, "Pod")
    assert "llama-rendezvous" in deletes(step, "PodGroup")  # no queue quota held while suspended
    done = [pod(job, i, phase="Succeeded", exit_code=0) for i in range(3)]
    finished = plan(job, pg, [*done, store_pod(job)], svc, T0, rendezvous_objects=others)
    assert finished.status.phase == Phase.SUCCEEDED
    assert "llama-rendezvous" in deletes(finished, "Pod")
    assert "llama-rendezvous" in deletes(finished, "PodGroup")


def _suspend(job: Any) -> Any:
    return job.spec.run_policy.model_copy(update={"suspend": True})

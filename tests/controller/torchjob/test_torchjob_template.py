"""The worker pod template (pure): the template reaches the pod, the operator's own fields win, shared memory
and host-network ports are as documented."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import TorchJob
from api.ports import HOST_PORT_BASE, HOST_PORT_COUNT
from controller.runtime.objects import JsonObject
from controller.torchjob.pod import desired_worker
from controller.torchjob.ports import allocate, needs_host_ports, rendezvous_port, taken_ports
from controller.torchjob.reconciler import CACHE_WAIT
from tests.controller.torchjob.reconcilers import (
    PODS,
    job_status,
    reconcile,
    setup,
    sync,
    writes,
)

UID = "0f8e2c1a-2b3c-4d5e-8f90-123456789abc"


def make_job(status: JsonObject | None = None, **spec: Any) -> TorchJob:
    body: JsonObject = {"image": "img:1", "command": ["-m", "train"], "nodes": {"count": 2}, **spec}
    obj: JsonObject = {"metadata": {"name": "llama", "namespace": "team-a", "uid": UID}, "spec": body}
    if status is not None:
        obj["status"] = status
    return TorchJob.model_validate(obj)


def env_of(pod: JsonObject) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}


# --- shared memory ----------------------------------------------------------------------------------------


def shm_volume(pod: JsonObject) -> JsonObject | None:
    return next((v for v in pod["spec"]["volumes"] if v["name"] == "pyroclast-shm"), None)


def test_shm_defaults_to_half_the_memory_limit() -> None:
    pod = desired_worker(make_job(resources={"limits": {"memory": "64Gi"}}), 0, 0)
    assert shm_volume(pod) == {
        "name": "pyroclast-shm",
        "emptyDir": {"medium": "Memory", "sizeLimit": str(32 * 2**30)},
    }
    assert {"name": "pyroclast-shm", "mountPath": "/dev/shm"} in pod["spec"]["containers"][0]["volumeMounts"]


def test_shm_size_from_the_spec_and_unbounded_without_a_limit() -> None:
    sized = desired_worker(
        make_job(sharedMemory={"sizeLimit": "8Gi"}, resources={"limits": {"memory": "64Gi"}}), 0, 0
    )
    assert shm_volume(sized) == {
        "name": "pyroclast-shm",
        "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"},
    }
    unbounded = desired_worker(make_job(), 0, 0)
    assert shm_volume(unbounded) == {"name": "pyroclast-shm", "emptyDir": {"medium": "Memory"}}


def test_shm_can_be_switched_off_and_then_dev_shm_is_the_templates() -> None:
    job = make_job(
        sharedMemory={"enabled": False},
        template={
            "spec": {
                "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
                "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
            }
        },
    )
    pod = desired_worker(job, 0, 0)
    assert shm_volume(pod) is None
    assert pod["spec"]["containers"][0]["volumeMounts"] == [{"name": "shm", "mountPath": "/dev/shm"}]


# --- host network -----------------------------------------------------------------------------------------

HOST = {"spec": {"hostNetwork": True}}


def test_host_network_defaults_dns_to_cluster_first_with_host_net_unless_set() -> None:
    assert desired_worker(make_job(template=HOST), 0, 0)["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    own = make_job(template={"spec": {"hostNetwork": True, "dnsPolicy": "Default"}})
    assert desired_worker(own, 0, 0)["spec"]["dnsPolicy"] == "Default"
    assert "dnsPolicy" not in desired_worker(make_job(), 0, 0)["spec"]


def test_a_fixed_host_network_job_needs_ports_until_they_are_recorded() -> None:
    assert needs_host_ports(make_job(template=HOST))
    assert not needs_host_ports(
        make_job(template=HOST, status={"ports": {"rendezvous": 21000, "master": 21000}})
    )
    assert not needs_host_ports(make_job())
    # An elastic job's store has its own pod network; its trainers' store port is the kernel's choice.
    assert not needs_host_ports(make_job(template=HOST, nodes={"count": 2, "min": 1, "max": 4}))


def test_workers_listen_on_and_dial_the_recorded_port() -> None:
    job = make_job(template=HOST, status={"ports": {"rendezvous": 21234, "master": 21234}})
    assert rendezvous_port(job) == 21234
    for index in (0, 1):
        pod = desired_worker(job, index, 0)
        assert pod["spec"]["containers"][0]["ports"] == [
            {"name": "rendezvous", "containerPort": 21234, "protocol": "TCP"}
        ]
        assert env_of(pod)["PET_RDZV_ENDPOINT"] == "llama-worker-0.pyroclast-workers.team-a.svc:21234"
    # Without host networking the recorded port means nothing: the spec's port on the pod's own network.
    plain = make_job(status={"ports": {"rendezvous": 21234}})
    assert env_of(desired_worker(plain, 0, 0))["PET_RDZV_ENDPOINT"].endswith(":29400")


def test_an_elastic_host_network_worker_declares_no_host_port() -> None:
    job = make_job(template=HOST, nodes={"count": 2, "min": 1, "max": 4})
    assert "ports" not in desired_worker(job, 0, 0)["spec"]["containers"][0]


def test_allocation_is_deterministic_and_skips_taken_ports() -> None:
    first = allocate(UID, set())
    assert first == allocate(UID, set())
    assert HOST_PORT_BASE <= first.rendezvous < HOST_PORT_BASE + HOST_PORT_COUNT
    assert first.master == first.rendezvous
    second = allocate(UID, {first.rendezvous})
    assert second.rendezvous != first.rendezvous
    assert allocate("another-uid", set()) != first  # jobs start from their own points


def test_allocation_wraps_around_and_fails_only_when_the_range_is_full() -> None:
    everything = set(range(HOST_PORT_BASE, HOST_PORT_BASE + HOST_PORT_COUNT))
    free = HOST_PORT_BASE + 7
    assert allocate(UID, everything - {free}).rendezvous == free
    with pytest.raises(RuntimeError, match="are taken by running jobs"):
        allocate(UID, everything)


def test_taken_ports_are_other_unfinished_jobs_recorded_ports() -> None:
    def obj(uid: str, phase: str | None, port: int | None) -> JsonObject:
        status: JsonObject = {"phase": phase} if phase else {}
        if port is not None:
            status["ports"] = {"rendezvous": port, "master": port}
        return {"metadata": {"uid": uid}, "status": status}

    jobs = [
        obj(UID, "Running", 20001),
        obj("b", "Running", 20002),
        obj("c", "Succeeded", 20003),
        obj("d", None, None),
    ]
    assert taken_ports(jobs, UID) == {20002}


# --- the template reaches the pod -------------------------------------------------------------------------

OWNED_SPEC = ("schedulerName", "restartPolicy", "hostname", "subdomain")
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "activeDeadlineSeconds": st.integers(1, 10**6),
    "automountServiceAccountToken": st.booleans(),
    "dnsPolicy": st.sampled_from(["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]),
    "enableServiceLinks": st.booleans(),
    "hostIPC": st.booleans(),
    "hostNetwork": st.booleans(),
    "hostPID": st.booleans(),
    "hostUsers": st.booleans(),
    "preemptionPolicy": st.sampled_from(["PreemptLowerPriority", "Never"]),
    "runtimeClassName": st.sampled_from(["rdma", "gvisor"]),
    "serviceAccountName": st.sampled_from(["trainer", "default"]),
    "setHostnameAsFQDN": st.booleans(),
    "shareProcessNamespace": st.booleans(),
    "terminationGracePeriodSeconds": st.integers(0, 86400),
}
OBJECTS: dict[str, st.SearchStrategy[Any]] = {
    "affinity": st.just({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}),
    "dnsConfig": st.just({"nameservers": ["127.0.0.1"], "options": [{"name": "ndots", "value": "2"}]}),
    "hostAliases": st.just([{"ip": "127.0.0.1", "hostnames": ["a.local"]}]),
    "nodeSelector": st.dictionaries(
        st.sampled_from(["pool", "zone"]), st.sampled_from(["a", "b"]), max_size=2
    ),
    "os": st.just({"name": "linux"}),
    "overhead": st.just({"cpu": "250m"}),
    "readinessGates": st.just([{"conditionType": "example.com/ready"}]),
    "resourceClaims": st.just([{"name": "gpu", "resourceClaimTemplateName": "gpus"}]),
    "resources": st.just({"limits": {"cpu": "4"}}),
    "schedulingGates": st.just([{"name": "example.com/wait"}]),
    "securityContext": st.just({"fsGroup": 2000, "runAsUser": 1000}),
    "tolerations": st.just([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]),
    "topologySpreadConstraints": st.just(
        [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]
    ),
    "imagePullSecrets": st.just([{"name": "registry"}]),
    "initContainers": st.just([{"name": "fetch", "image": "busybox", "restartPolicy": "Always"}]),
}


@st.composite
def templates(draw: st.DrawFn) -> JsonObject:
    spec: JsonObject = {}
    for field, values in {**SCALARS, **OBJECTS}.items():
        if draw(st.booleans()):
            spec[field] = draw(values)
    if draw(st.booleans()):
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
        spec["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    containers: list[JsonObject] = []
    if draw(st.booleans()):
        containers.append(
            {
                "name": "trainer",
                "securityContext": {"capabilities": {"add": ["IPC_LOCK"]}},
                "env": [{"name": "NCCL_IB_HCA", "value": "mlx5"}],
                "ports": [{"name": "metrics", "containerPort": 9090}],
                "volumeMounts": [{"name": "data", "mountPath": "/more"}] if "volumes" in spec else [],
            }
        )
    if draw(st.booleans()):
        containers.append({"name": "exporter", "image": "exporter:1"})
    if containers:
        spec["containers"] = containers
    if draw(st.booleans()):
        spec["sidecars"] = [{"name": "logger", "image": "busybox"}]
    meta: JsonObject = {}
    if draw(st.booleans()):
        meta = {"labels": {"team": draw(st.sampled_from(["a", "b"]))}, "annotations": {"note": "x"}}
    return {"metadata": meta, "spec": spec}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(templates(), st.booleans(), st.integers(0, 3))
def test_operator_fields_win_and_nothing_of_the_template_is_dropped(
    template: JsonObject, elastic: bool, index: int
) -> None:
    nodes = {"count": 4, "min": 2, "max": 4} if elastic else {"count": 4}
    status = {"ports": {"rendezvous": 21000, "master": 21000}}
    job = make_job(status=status, template=template, nodes=nodes, env=[{"name": "A", "value": "1"}])
    pod = desired_worker(job, index, 2)
    spec, meta = pod["spec"], pod["metadata"]
    written = template["spec"]
    trainer = spec["containers"][0]

    # The operator's own fields.
    assert (spec["schedulerName"], spec["restartPolicy"]) == ("volcano", "Never")
    assert (spec["hostname"], spec["subdomain"]) == (f"llama-worker-{index}", "pyroclast-workers")
    assert meta["labels"]["pyroclast.dev/job-name"] == "llama"
    assert meta["labels"]["pyroclast.dev/replica-index"] == str(index)
    assert meta["labels"]["pyroclast.dev/attempt"] == "2"
    assert meta["annotations"]["volcano.sh/task-spec"] == "worker"
    assert trainer["name"] == "trainer"
    assert trainer["image"] == "img:1"
    assert trainer["command"] == ["torchrun", "-m", "train"]
    assert trainer["terminationMessagePath"] == "/dev/termination-log"
    env = [e["name"] for e in trainer["env"]]
    # The launcher's env first, then the spec's, then the template's trainer entry's.
    assert env[0] == "PET_NNODES"
    template_env = [
        e["name"] for c in written.get("containers", []) if c["name"] == "trainer" for e in c["env"]
    ]
    assert env[len(env) - len(template_env) - 1 :] == ["A", *template_env]
    assert {"name": "pyroclast-shm", "mountPath": "/dev/shm"} in trainer["volumeMounts"]

    # Nothing of the template dropped, nothing changed.
    for key, value in template["metadata"].get("labels", {}).items():
        assert meta["labels"][key] == value
    for key, value in template["metadata"].get("annotations", {}).items():
        assert meta["annotations"][key] == value
    for field, value in written.items():
        if field in ("containers", "volumes", "volumeMounts", "sidecars"):
            continue
        assert spec[field] == value, field
    for volume in written.get("volumes", []):
        assert volume in spec["volumes"]
    for mount in written.get("volumeMounts", []):
        assert mount in trainer["volumeMounts"]
    extra = [c for c in written.get("containers", []) if c["name"] != "trainer"] + written.get("sidecars", [])
    assert spec["containers"][1:] == extra
    own = next((c for c in written.get("containers", []) if c["name"] == "trainer"), None)
    if own is not None:
        for field, value in own.items():
            if field in ("env", "ports", "volumeMounts"):
                assert all(item in trainer[field] for item in value), field
            elif field != "name":
                assert trainer[field] == value, field
    # Defaults the template did not set.
    if "enableServiceLinks" not in written:
        assert spec["enableServiceLinks"] is False
    if written.get("hostNetwork") and "dnsPolicy" not in written:
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


# --- the reconciler records ports before any pod exists (fake API server) ---------------------------------


async def test_host_ports_are_recorded_before_the_first_worker_and_kept() -> None:
    fake, reconciler, _ = setup(template={"spec": {"hostNetwork": True}})
    sync(fake, reconciler)
    result = await reconcile(reconciler)
    assert result.requeue_after == CACHE_WAIT
    ports = job_status(fake)["ports"]
    assert ports["rendezvous"] == ports["master"]
    assert [p for _, p in writes(fake)] == [
        "/apis/pyroclast.dev/v1alpha1/namespaces/team-a/torchjobs/llama/status"
    ]

    sync(fake, reconciler)
    await reconcile(reconciler)
    pods = list(fake.objects[PODS].values())
    assert len(pods) == 2
    for pod in pods:
        (trainer,) = pod["spec"]["containers"]
        assert trainer["ports"][0]["containerPort"] == ports["rendezvous"]
        assert pod["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert job_status(fake)["ports"] == ports

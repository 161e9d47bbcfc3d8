"""When the apiserver refuses what a job needs, or its queue cannot admit it, the job says so.

On the local cluster, for each cause a user meets: a priority class that does not exist (Priority admission),
a namespace enforcing Pod Security `restricted`, an invalid field passed through the pod template, a
ResourceQuota with no room (ResourceQuota admission). Each is visible within one reconcile in `kubectl get tj`
(the PHASE column), `kubectl describe` (the CreateFailed condition and a FailedCreatePod Event) and
`pyroclast job describe`; retries go on and a create that succeeds clears it. A queue that does not exist, or
is Closed, is named in the Queued condition with what to do.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import EVENTS, PODS
from controller.torchjob.kinds import TORCHJOBS
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.torchjobs import condition, names, operator, status_of, torchjob, wait_for, wait_phase

CliRun = Callable[..., tuple[int, str, str]]


async def in_thread(cli: CliRun, *argv: str) -> tuple[int, str, str]:
    """The CLI runs its own event loop: off this test's loop."""
    return await anyio.to_thread.run_sync(lambda: cli(*argv))


async def refused(client: Client, namespace: str, name: str) -> JsonObject:
    """The CreateFailed condition once the job shows it (phase and condition come in one status write)."""
    status = await wait_phase(client, namespace, name, "CreateFailed", within=60)
    cond = condition(status, "CreateFailed")
    assert cond is not None, status
    assert cond["status"] == "True"
    return cond


async def warnings(client: Client, namespace: str, name: str) -> list[JsonObject]:
    selector = f"involvedObject.kind=TorchJob,involvedObject.name={name},type=Warning"

    async def probe() -> list[JsonObject]:
        return (await client.list(EVENTS, namespace, field_selector=selector)).items

    return await wait_for(f"Warning events on {name}", probe, 30)


async def test_a_missing_priority_class_shows_in_kubectl_and_pyroclast(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, cli: CliRun
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        body = torchjob("prio", nodes, scheduling={"priorityClassName": "no-such-class"})
        await client.create(TORCHJOBS, body, namespace)
        cond = await refused(client, namespace, "prio")
        assert cond["reason"] == "FailedCreatePod"
        assert "no-such-class" in cond["message"]
        events = await warnings(client, namespace, "prio")
        assert [(e["reason"], e["message"]) for e in events] == [("FailedCreatePod", cond["message"])]

        table = cluster.kubectl("get", "tj", "prio", "-n", namespace).stdout
        assert table.splitlines()[0].split()[:2] == ["NAME", "PHASE"]
        assert table.splitlines()[1].split()[:2] == ["prio", "CreateFailed"]
        selected = cluster.kubectl(
            "get", "tj", "-n", namespace, "--field-selector", "status.phase=CreateFailed", "-o", "name"
        ).stdout
        assert selected.split() == ["torchjob.pyroclast.dev/prio"]
        described = cluster.kubectl("describe", "tj", "prio", "-n", namespace).stdout
        assert "CreateFailed" in described
        assert "FailedCreatePod" in described
        assert "no-such-class" in described
        code, out, _ = await in_thread(cli, "job", "describe", "prio", "-n", namespace)
        assert code == 0
        assert "Create refused:" in out
        assert "no-such-class" in out
        # The refusal is the reason given, not the scheduler's "0/0 tasks in gang unschedulable" (which
        # stays in the Events table, as Volcano recorded it on the PodGroup).
        assert "Scheduler:" not in out
        assert "FailedCreatePod" in out

        # The class appears: the next retry (with backoff) creates the pods and the condition clears.
        cluster.api.create(
            "/apis/scheduling.k8s.io/v1/priorityclasses",
            {"metadata": {"name": "no-such-class"}, "value": 100},
            exist_ok=True,
        )
        try:
            status = await wait_phase(client, namespace, "prio", "Running", within=90)
            cleared = condition(status, "CreateFailed")
            assert cleared is not None
            assert (cleared["status"], cleared["reason"]) == ("False", "Resolved")
            assert len(await names(client, PODS, namespace)) == 2
        finally:
            cluster.api.delete("/apis/scheduling.k8s.io/v1/priorityclasses/no-such-class")


async def test_pod_security_restricted_refuses_the_workers(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    cluster.api.merge_patch(
        f"/api/v1/namespaces/{namespace}",
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("psa", nodes), namespace)
        cond = await refused(client, namespace, "psa")
        assert cond["reason"] == "FailedCreatePod"
        assert 'violates PodSecurity "restricted' in cond["message"]
        assert [e["reason"] for e in await warnings(client, namespace, "psa")] == ["FailedCreatePod"]


async def test_an_invalid_pass_through_field_is_quoted(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    body = torchjob("bad", nodes)
    term = {"matchExpressions": [{"key": "zone", "operator": "Sometimes", "values": ["a"]}]}
    body["spec"]["template"]["spec"]["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    }
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, body, namespace)  # the CRD passes affinity through as written
        cond = await refused(client, namespace, "bad")
        assert cond["reason"] == "FailedCreatePod"
        assert "(422)" in cond["message"]
        assert "Sometimes" in cond["message"]


async def test_a_full_resource_quota_refuses_until_it_has_room(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    quota_path = f"/api/v1/namespaces/{namespace}/resourcequotas"
    cluster.api.create(quota_path, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "0"}}})
    # The quota controller fills status in; written here as it would be, so the test does not wait for it.
    cluster.api.merge_patch(
        f"{quota_path}/pods/status", {"status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}}
    )
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("quota", nodes), namespace)
        cond = await refused(client, namespace, "quota")
        assert cond["reason"] == "FailedCreatePod"
        assert "exceeded quota" in cond["message"]
        assert (await status_of(client, namespace, "quota"))["phase"] == "CreateFailed"
        assert await names(client, PODS, namespace) == []

        # Room is made: retries go on (with backoff) and the gang is created.
        cluster.api.merge_patch(f"{quota_path}/pods", {"spec": {"hard": {"pods": "4"}}})
        cluster.api.merge_patch(f"{quota_path}/pods/status", {"status": {"hard": {"pods": "4"}}})
        status = await wait_phase(client, namespace, "quota", "Running", within=120)
        cleared = condition(status, "CreateFailed")
        assert cleared is not None
        assert cleared["status"] == "False"


@pytest.mark.parametrize(
    ("kind", "counted"),
    [("PodGroup", "count/podgroups.scheduling.volcano.sh"), ("Service", "services")],
    ids=["podgroup", "service"],
)
async def test_a_refused_podgroup_or_service_stops_the_gang_until_there_is_room(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, kind: str, counted: str
) -> None:
    nodes(2, cpu="4")
    quota_path = f"/api/v1/namespaces/{namespace}/resourcequotas"
    cluster.api.create(quota_path, {"metadata": {"name": "objects"}, "spec": {"hard": {counted: "0"}}})
    cluster.api.merge_patch(
        f"{quota_path}/objects/status", {"status": {"hard": {counted: "0"}, "used": {counted: "0"}}}
    )
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("gated", nodes), namespace)
        cond = await refused(client, namespace, "gated")
        assert cond["reason"] == f"FailedCreate{kind}"
        assert "exceeded quota" in cond["message"]
        assert [e["reason"] for e in await warnings(client, namespace, "gated")] == [f"FailedCreate{kind}"]
        assert await names(client, PODS, namespace) == [], "no worker before its gang's objects exist"

        cluster.api.merge_patch(f"{quota_path}/objects", {"spec": {"hard": {counted: "4"}}})
        cluster.api.merge_patch(f"{quota_path}/objects/status", {"status": {"hard": {counted: "4"}}})
        status = await wait_phase(client, namespace, "gated", "Running", within=120)
        cleared = condition(status, "CreateFailed")
        assert cleared is not None
        assert cleared["status"] == "False"


@pytest.mark.parametrize("closed", [False, True], ids=["missing", "closed"])
async def test_a_queue_that_cannot_admit_the_job_is_named(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, qname: str, cli: CliRun, closed: bool
) -> None:
    nodes(2, cpu="4")
    if closed:
        assert (await in_thread(cli, "queue", "create", qname))[0] == 0
        assert (await in_thread(cli, "queue", "close", qname, "--wait", "30"))[0] == 0
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("lost", nodes, scheduling={"queue": qname}), namespace)

        async def named() -> JsonObject | None:
            cond = condition(await status_of(client, namespace, "lost"), "Queued")
            return cond if cond is not None and cond["reason"].startswith("Queue") else None

        cond = await wait_for("the queue named in the Queued condition", named, 60)
        assert cond["reason"] == ("QueueClosed" if closed else "QueueNotFound")
        assert repr(qname) in cond["message"]
        fix = f"pyroclast queue open {qname}" if closed else f"pyroclast queue create {qname}"
        assert fix in cond["message"]
        assert (await status_of(client, namespace, "lost"))["phase"] == "Queued"
        described = cluster.kubectl("describe", "tj", "lost", "-n", namespace).stdout
        assert cond["reason"] in described
        # Said once (a Warning Event), not on every look at the waiting gang.
        await anyio.sleep(3)
        assert [e["reason"] for e in await warnings(client, namespace, "lost")] == [cond["reason"]]

"""Smoke tests proving the local cluster is real: gang scheduling, preemption, GC, namespaces, watches."""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.cluster import Api, ApiError, Cluster, kwok, wait_for
from e2e.cluster.pool import NodePool

PG_API = "/apis/scheduling.volcano.sh/v1beta1"
PC_API = "/apis/scheduling.k8s.io/v1/priorityclasses"
JSON = dict[str, Any]


def podgroup(name: str, min_member: int, priority_class: str | None = None) -> JSON:
    """A PodGroup in the default queue, without minResources (enqueued at once)."""
    spec: JSON = {"minMember": min_member, "queue": "default"}
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "PodGroup",
        "metadata": {"name": name},
        "spec": spec,
    }


def gang_pod(
    name: str, group: str, pool: NodePool, *, cpu: str = "2", priority_class: str | None = None
) -> JSON:
    """A Volcano-scheduled member of `group`, pinned to the test's node pool."""
    spec: JSON = {
        "schedulerName": "volcano",
        "nodeSelector": pool.node_selector,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "main", "image": "pyroclast/fake", "resources": {"requests": {"cpu": cpu}}}],
    }
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"scheduling.k8s.io/group-name": group}},
        "spec": spec,
    }


def create_gang(
    api: Api, ns: str, group: str, size: int, min_member: int, pool: NodePool, **kw: Any
) -> list[str]:
    """PodGroup first (as controllers do), then its pods; returns pod names."""
    api.create(f"{PG_API}/namespaces/{ns}/podgroups", podgroup(group, min_member, kw.get("priority_class")))
    names = [f"{group}-{i}" for i in range(size)]
    for name in names:
        api.create(f"/api/v1/namespaces/{ns}/pods", gang_pod(name, group, pool, **kw))
    return names


def get_pod(api: Api, ns: str, name: str) -> JSON | None:
    return api.get(f"/api/v1/namespaces/{ns}/pods/{name}")


def all_running(api: Api, ns: str, names: list[str]) -> bool:
    pods = [get_pod(api, ns, n) for n in names]
    return all(p and p["spec"].get("nodeName") and p["status"].get("phase") == "Running" for p in pods)


def podgroup_status(api: Api, ns: str, name: str) -> JSON:
    pg = api.get(f"{PG_API}/namespaces/{ns}/podgroups/{name}") or {}
    return pg.get("status") or {}


@pytest.fixture
def priority_classes(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A (low, high) pair of PriorityClasses unique to the test."""
    suffix = secrets.token_hex(3)
    low, high = f"smoke-low-{suffix}", f"smoke-high-{suffix}"
    for name, value in ((low, 100), (high, 1000)):
        cluster.api.create(
            PC_API,
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
            },
        )
    yield low, high
    for name in (low, high):
        cluster.api.delete(f"{PC_API}/{name}")


def test_gang_that_fits_runs(cluster: Cluster, namespace: str, nodes: NodePool) -> None:
    nodes(2, cpu="2")  # capacity for exactly two 2-cpu pods
    names = create_gang(cluster.api, namespace, "fits", size=2, min_member=2, pool=nodes)

    wait_for("both gang pods bound and Running", lambda: all_running(cluster.api, namespace, names), 30)
    bound = {get_pod(cluster.api, namespace, n)["spec"]["nodeName"] for n in names}  # type: ignore[index]
    assert bound == set(nodes.names)
    wait_for(
        "PodGroup Running",
        lambda: podgroup_status(cluster.api, namespace, "fits").get("phase") == "Running",
        15,
    )


def test_gang_that_does_not_fit_binds_nothing(cluster: Cluster, namespace: str, nodes: NodePool) -> None:
    nodes(2, cpu="2")
    names = create_gang(cluster.api, namespace, "toobig", size=3, min_member=3, pool=nodes)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        bound = [
            n for n in names if (get_pod(cluster.api, namespace, n) or {}).get("spec", {}).get("nodeName")
        ]
        assert bound == [], f"gang of 3 on capacity for 2 must bind nothing, but bound {bound}"
        time.sleep(1)

    status = podgroup_status(cluster.api, namespace, "toobig")
    assert status.get("phase") != "Running"
    unschedulable = [c for c in status.get("conditions") or [] if c.get("type") == "Unschedulable"]
    events = (
        cluster.api.get(
            f"/api/v1/namespaces/{namespace}/events",
            params={"fieldSelector": "involvedObject.kind=PodGroup,involvedObject.name=toobig"},
        )
        or {}
    )
    unschedulable_events = [e for e in events.get("items", []) if e.get("reason") == "Unschedulable"]
    assert unschedulable or unschedulable_events, f"no Unschedulable condition or event; status={status}"
    if unschedulable:
        assert unschedulable[0]["status"] == "True"


def test_higher_priority_gang_preempts_lower(
    cluster: Cluster, namespace: str, nodes: NodePool, priority_classes: tuple[str, str]
) -> None:
    low, high = priority_classes
    nodes(2, cpu="2")
    victims = create_gang(cluster.api, namespace, "low", size=2, min_member=2, pool=nodes, priority_class=low)
    wait_for("low-priority gang Running", lambda: all_running(cluster.api, namespace, victims), 30)

    winners = create_gang(
        cluster.api, namespace, "high", size=2, min_member=2, pool=nodes, priority_class=high
    )

    wait_for("high-priority gang Running", lambda: all_running(cluster.api, namespace, winners), 60)
    for name in victims:
        pod = get_pod(cluster.api, namespace, name)
        assert pod is None or pod["metadata"].get("deletionTimestamp"), f"victim {name} survived: {pod}"


def test_deleting_a_namespace_removes_its_pods(cluster: Cluster, nodes: NodePool) -> None:
    [node] = nodes(1, cpu="4")
    ns = f"t-{secrets.token_hex(4)}"
    cluster.create_namespace(ns)
    pod = {
        "metadata": {"name": "doomed"},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "pyroclast/fake"}]},
    }
    cluster.api.create(f"/api/v1/namespaces/{ns}/pods", pod)
    wait_for(
        "pod Running",
        lambda: (get_pod(cluster.api, ns, "doomed") or {}).get("status", {}).get("phase") == "Running",
        30,
    )

    cluster.api.delete(f"/api/v1/namespaces/{ns}")

    wait_for("namespace gone", lambda: cluster.api.get(f"/api/v1/namespaces/{ns}") is None, 90)
    pods = cluster.api.get(f"/api/v1/namespaces/{ns}/pods") or {}
    assert pods.get("items", []) == []


def test_garbage_collector_deletes_dependents(cluster: Cluster, namespace: str, nodes: NodePool) -> None:
    [node] = nodes(1, cpu="4")
    owner = cluster.api.create(f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "owner"}})
    assert owner is not None
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    pod = {
        "metadata": {"name": "dependent", "ownerReferences": [ref]},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "pyroclast/fake"}]},
    }
    cluster.api.create(f"/api/v1/namespaces/{namespace}/pods", pod)

    cluster.api.delete(f"/api/v1/namespaces/{namespace}/configmaps/owner")

    wait_for("dependent pod collected", lambda: get_pod(cluster.api, namespace, "dependent") is None, 60)


def _watch_into(api: Api, path: str, rv: str, events: queue.Queue[JSON | BaseException]) -> None:
    try:
        for event in api.watch(path, rv, timeout_seconds=120):
            events.put(event)
        events.put(EOFError("watch ended"))
    except BaseException as exc:  # the stream breaks when the apiserver goes away
        events.put(exc)


def _next_added(events: queue.Queue[JSON | BaseException], timeout: float) -> JSON:
    deadline = time.monotonic() + timeout
    while True:
        item = events.get(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(item, BaseException):
            raise AssertionError(f"watch ended before the expected event: {item!r}")
        if item["type"] == "ERROR":
            raise AssertionError(f"watch returned an error: {item}")
        if item["type"] == "ADDED":
            return item


def test_watch_across_apiserver_restart_is_told_to_relist_and_resumes_from_the_list(
    cluster: Cluster, namespace: str
) -> None:
    """With the watch cache (as in production) a restarted apiserver answers 410 to a watch from before the
    restart; the client relists and watches on from the list's resourceVersion without replaying anything."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    start_rv = (cluster.api.get(path) or {})["metadata"]["resourceVersion"]
    events: queue.Queue[JSON | BaseException] = queue.Queue()
    watcher_api = cluster.new_api()
    watcher = threading.Thread(target=_watch_into, args=(watcher_api, path, start_rv, events), daemon=True)
    watcher.start()

    cluster.api.create(path, {"metadata": {"name": "before"}})
    first = _next_added(events, 15)
    assert first["object"]["metadata"]["name"] == "before"
    last_rv = first["object"]["metadata"]["resourceVersion"]

    cluster.restart("kube-apiserver")
    watcher.join(30)
    assert not watcher.is_alive(), "the watch should have been cut by the restart"
    watcher_api.close()

    cluster.api.create(path, {"metadata": {"name": "after"}})
    resumed: queue.Queue[JSON | BaseException] = queue.Queue()
    resume_api = cluster.new_api()
    try:
        thread = threading.Thread(target=_watch_into, args=(resume_api, path, last_rv, resumed), daemon=True)
        thread.start()
        item = resumed.get(timeout=30)
        assert isinstance(item, dict), item
        assert item["type"] == "ERROR", "a restarted watch cache starts at the current revision"
        assert item["object"]["code"] == 410
    finally:
        resume_api.close()

    listed = cluster.api.get(path) or {}
    assert {"before", "after"} <= {cm["metadata"]["name"] for cm in listed["items"]}
    relisted: queue.Queue[JSON | BaseException] = queue.Queue()
    relist_api = cluster.new_api()
    try:
        args = (relist_api, path, listed["metadata"]["resourceVersion"], relisted)
        threading.Thread(target=_watch_into, args=args, daemon=True).start()
        cluster.api.create(path, {"metadata": {"name": "later"}})
        event = _next_added(relisted, 30)
        assert event["object"]["metadata"]["name"] == "later", "the watch from the list must not replay"
    finally:
        relist_api.close()


def _names_at(cluster: Cluster, path: str, rv: str) -> set[str]:
    exact = {"resourceVersion": rv, "resourceVersionMatch": "Exact"}
    listed = cluster.api.request("GET", path, params=exact).json()
    return {item["metadata"]["name"] for item in listed["items"]}


def test_compact_etcd_expires_old_resource_versions(cluster: Cluster, namespace: str) -> None:
    """A resourceVersion older than the watch cache's window is read from etcd: served until compaction passes
    it, then 410 for lists and watches (the cache's window starts at the apiserver's restart)."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    old_rv = (cluster.api.get(path) or {})["metadata"]["resourceVersion"]
    for i in range(3):
        cluster.api.create(path, {"metadata": {"name": f"cm-{i}"}})
    cluster.restart("kube-apiserver")
    assert not {f"cm-{i}" for i in range(3)} & _names_at(cluster, path, old_rv), "etcd serves the old state"

    revision = cluster.compact_etcd()

    assert revision > int(old_rv)
    with pytest.raises(ApiError) as err:
        _names_at(cluster, path, old_rv)
    assert err.value.status == 410
    expired = next(cluster.api.watch(path, old_rv, timeout_seconds=5))
    assert expired["type"] == "ERROR"
    assert expired["object"]["code"] == 410


def test_the_apiserver_accepts_the_rig_pki_certificates(cluster: Cluster) -> None:
    """A client certificate issued by the rig's PKI authenticates as its CN and O (groups), over TLS verified
    against the rig's serving CA (kubectl checks the apiserver's certificate and its 127.0.0.1 SAN)."""
    kubeconfig = cluster.add_user("pki-alice", ["team-a", "team-b"])
    done = cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig)
    user = json.loads(done.stdout)["status"]["userInfo"]
    assert user["username"] == "pki-alice"
    assert set(user["groups"]) == {"team-a", "team-b", "system:authenticated"}
    # RBAC applies to the user as named: nothing granted, so a read is refused by name.
    denied = cluster.kubectl("get", "pods", "-n", "default", kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0
    assert 'User "pki-alice" cannot list resource "pods"' in denied.stderr


def test_kwok_may_only_finish_deletions_a_kubelet_would(cluster: Cluster, namespace: str) -> None:
    """kwok deletes by name; the rig lets its user finish a deletion under way, never remove a live pod (as a
    late delete of a pod whose name was just reused would)."""
    kubeconfig = cluster.add_user(kwok.USER, kwok.GROUPS)
    path = f"/api/v1/namespaces/{namespace}/pods"
    for name in ("live", "leaving"):
        # Never scheduled (no such scheduler), so kwok itself leaves them alone.
        spec = {"schedulerName": "none", "containers": [{"name": "c", "image": "example.invalid/x:1"}]}
        meta: JSON = {"name": name, "finalizers": ["pyroclast.dev/test-hold"] if name == "leaving" else []}
        cluster.api.create(path, {"metadata": meta, "spec": spec})
    cluster.kubectl("delete", "pod", "leaving", "-n", namespace, "--wait=false")

    as_kwok = {"kubeconfig": kubeconfig, "check": False}
    refused = cluster.kubectl("delete", "pod", "live", "-n", namespace, **as_kwok)
    finished = cluster.kubectl("delete", "pod", "leaving", "-n", namespace, "--wait=false", **as_kwok)

    assert refused.returncode != 0
    assert kwok.POLICY_NAME in refused.stderr
    assert "already being deleted" in refused.stderr
    assert cluster.api.get(f"{path}/live") is not None
    assert finished.returncode == 0
    # Anyone else still deletes live pods.
    cluster.kubectl("delete", "pod", "live", "-n", namespace, "--wait=false")
    release: JSON = {"metadata": {"finalizers": None}}
    cluster.api.request("PATCH", f"{path}/leaving", body=release, content_type="application/merge-patch+json")

"""The operator as users deploy it: `kubectl apply -k deploy/base` on process nodes.

The Deployment's two replicas are scheduled by kube-scheduler onto process nodes, where the kubelet stand-in
runs the operator image's ENTRYPOINT (`pyroclast`) with the Deployment's args. Each replica has only what a
pod has in-cluster: `KUBERNETES_SERVICE_HOST/PORT` (the rig's apiserver forwarder on the bridge's host
address) and the projected ServiceAccount token and CA that ServiceAccount admission mounted. One holds the
Lease and runs a real training job to Succeeded; deleting it hands the Lease to the other within 20 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import yaml

from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import LEASES
from controller.torchjob.kinds import TORCHJOBS
from e2e.cluster import Cluster, wait_for
from e2e.cluster.operator import install_crd
from e2e.cluster.process_nodes import ProcessNodePool
from e2e.torchjobs import condition, wait_phase
from e2e.training import train_args, training_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SYSTEM_NS = "pyroclast-system"
DEPLOYMENT = "pyroclast-operator"
LEASE = "pyroclast-operator"
SELECTOR = "app.kubernetes.io/name=pyroclast,app.kubernetes.io/component=operator"
HANDOVER_BOUND_S = 20.0


def _operator_pods(cluster: Cluster) -> list[JsonObject]:
    listed = cluster.api.get(f"/api/v1/namespaces/{SYSTEM_NS}/pods", params={"labelSelector": SELECTOR})
    return [p for p in (listed or {}).get("items", []) if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: JsonObject) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _holder(cluster: Cluster) -> str:
    lease = cluster.api.get(f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM_NS}/leases/{LEASE}") or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _pod_of(identity: str, pods: list[JsonObject]) -> JsonObject | None:
    """The pod whose operator holds `identity` (`<hostname>_<uuid>`; a pod's hostname is its name)."""
    return next((p for p in pods if identity.startswith(p["metadata"]["name"] + "_")), None)


def _logs(cluster: Cluster, pod: str) -> list[JsonObject]:
    out = cluster.kubectl("logs", "-n", SYSTEM_NS, pod, "-c", "operator", check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _namespace_gone(cluster: Cluster) -> bool:
    return cluster.api.get(f"/api/v1/namespaces/{SYSTEM_NS}") is None


@pytest.fixture
def deployed(cluster: Cluster, crd: str, process_nodes: ProcessNodePool) -> Iterator[ProcessNodePool]:
    """Two process nodes, then `kubectl apply -k deploy/base` with both replicas Ready on them."""
    process_nodes(2, cpu="4", memory="8Gi")
    docs = [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", "deploy/base").stdout) if d]
    cluster.kubectl("apply", "-k", "deploy/base")
    install_crd(cluster)  # the session's CRD is the one generated from the models now
    try:

        def both_ready() -> list[JsonObject] | None:
            pods = _operator_pods(cluster)
            return pods if len(pods) == 2 and all(_ready(p) for p in pods) else None

        try:
            wait_for("both operator replicas Ready", both_ready, 240, interval=1)
        except Exception:
            for pod in _operator_pods(cluster):
                print(pod["metadata"]["name"], json.dumps(pod.get("status"), indent=1)[:3000])
            raise
        yield process_nodes
    finally:
        rest = yaml.safe_dump_all([d for d in docs if d["kind"] != "CustomResourceDefinition"])
        cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=rest)
        # The namespace goes once its pods ended gracefully; the next install must not meet it Terminating.
        wait_for(f"namespace {SYSTEM_NS} deleted", lambda: _namespace_gone(cluster), 180, interval=1)


async def test_deployed_operator_runs_a_real_job_in_cluster_and_hands_over_within_20s(
    cluster: Cluster, deployed: ProcessNodePool, namespace: str
) -> None:
    pods = _operator_pods(cluster)
    assert {p["spec"]["nodeName"] for p in pods} <= set(deployed.names), "scheduled onto the process nodes"
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == "pyroclast-operator"
        projected = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
        assert projected, "ServiceAccount admission mounts the token, CA and namespace"
        # The only credentials in the pod are those: the operator found the apiserver in-cluster.
        [start] = [
            line
            for line in _logs(cluster, pod["metadata"]["name"])
            if line["msg"] == "pyroclast operator starting"
        ]
        assert start["server"] == f"{cluster.pod_host}:{cluster.pod_apiserver_port}"
        assert start["leader_elect"] is True

    leader = wait_for("a replica holds the Lease", lambda: _pod_of(_holder(cluster), pods), 60)
    [follower] = [p for p in pods if p["metadata"]["name"] != leader["metadata"]["name"]]

    admin = await Client.connect(cluster.kubeconfig)
    try:
        job = training_job("deployed", deployed, count=2, nproc=1, cpu="1", args=train_args(20, 0.05))
        await admin.create(TORCHJOBS, job, namespace)
        done = await wait_phase(admin, namespace, "deployed", "Succeeded", 300)
        assert condition(done, "Running") is not None
        assert done["lastCheckpoint"]["step"] == 20
        lease = await admin.get(LEASES, LEASE, SYSTEM_NS)
        assert lease["spec"]["holderIdentity"].startswith(leader["metadata"]["name"] + "_")
    finally:
        await admin.aclose()
    reconciled = [
        line for line in _logs(cluster, leader["metadata"]["name"]) if "deployed" in json.dumps(line)
    ]
    assert reconciled, "the leader replica reconciled the job"

    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", SYSTEM_NS, leader["metadata"]["name"], "--wait=false")
    gone = leader["metadata"]["name"] + "_"
    # The freed Lease goes to whichever standby asks first: the other replica or the ReplicaSet's new pod.
    holder: str = wait_for(
        "another replica holds the Lease",
        lambda: h if (h := _holder(cluster)) and not h.startswith(gone) else None,
        HANDOVER_BOUND_S + 10,
        interval=0.2,
    )
    handover = time.monotonic() - t0
    taker = (
        "the other replica" if holder.startswith(follower["metadata"]["name"] + "_") else "the replacement"
    )
    print(f"leader handover after deleting the leader pod: {handover:.1f} s (to {taker})")
    assert handover < HANDOVER_BOUND_S

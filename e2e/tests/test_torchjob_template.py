"""The worker pod template on the real apiserver: every PodSpec field reaches the pods, host networking gets
its own ports per job, and a template the apiserver would refuse is caught by the dry run of the first worker.

The operator's own fields are refused at admission: those cases are rows of the invalid-manifest table
(``tests/api/api_cases.py``), which ``test_api_admission`` sends to this apiserver.
"""

from __future__ import annotations

import copy
from typing import Any

from api.pod import OWNED_POD_FIELDS
from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS
from controller.torchjob.kinds import PODGROUPS, TORCHJOBS
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.torchjobs import condition, names, operator, status_of, torchjob, wait_for, wait_phase

NOT_SET: frozenset[str] = frozenset(
    {
        "ephemeralContainers",  # added to running pods (kubectl debug); the apiserver refuses them on create
        "overhead",  # written by RuntimeClass admission from the RuntimeClass, refused when set otherwise
        "hostnameOverride",  # alpha (gated off): the apiserver drops it
        "schedulingGroup",  # alpha (gated off): kube-scheduler's own gangs; the job's gang is Volcano's
        "serviceAccount",  # the deprecated alias of serviceAccountName: set below, checked as that
    }
)
"""PodSpec fields the full template leaves out, and why."""


def full_template(pool: NodePool) -> JsonObject:
    """A template that sets every top-level PodSpec field but the operator's own and :data:`NOT_SET`."""
    return {
        "metadata": {"labels": {"team": "vision"}, "annotations": {"example.com/owner": "ml-platform"}},
        "spec": {
            "activeDeadlineSeconds": 86400,
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 10,
                            "podAffinityTerm": {
                                "labelSelector": {"matchLabels": {"team": "vision"}},
                                "topologyKey": "kubernetes.io/hostname",
                            },
                        }
                    ]
                }
            },
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "trainer",
                    "securityContext": {"capabilities": {"add": ["IPC_LOCK"]}},
                    "env": [{"name": "NCCL_IB_HCA", "value": "mlx5"}],
                    "workingDir": "/work",
                },
                {"name": "exporter", "image": "example.invalid/exporter:1", "args": ["--port=9400"]},
            ],
            "dnsConfig": {"nameservers": ["127.0.0.1"], "searches": ["example.internal"]},
            "dnsPolicy": "None",
            "enableServiceLinks": True,
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["registry.local"]}],
            "hostIPC": True,
            "hostNetwork": True,
            "hostPID": True,
            "hostUsers": True,
            "imagePullSecrets": [{"name": "registry"}],
            "initContainers": [
                {"name": "fetch", "image": "example.invalid/fetch:1", "command": ["fetch", "/data"]},
                {"name": "log-shipper", "image": "example.invalid/ship:1", "restartPolicy": "Always"},
            ],
            "nodeSelector": pool.node_selector,
            "os": {"name": "linux"},
            "preemptionPolicy": "PreemptLowerPriority",
            "readinessGates": [{"conditionType": "example.com/fabric-ready"}],
            "resourceClaims": [{"name": "fabric", "resourceClaimTemplateName": "rdma"}],
            "resources": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
            "runtimeClassName": "rdma",
            "schedulingGates": [{"name": "example.com/fabric"}],
            "securityContext": {"fsGroup": 2000, "supplementalGroups": [3000]},
            "serviceAccountName": "trainer",
            "setHostnameAsFQDN": False,
            "shareProcessNamespace": False,  # true is refused with hostPID
            "terminationGracePeriodSeconds": 300,
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"team": "vision"}},
                }
            ],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "train-config", "defaultMode": 420}},
                {"name": "ib", "hostPath": {"path": "/dev/infiniband", "type": "Directory"}},
            ],
        },
    }


APPENDED: frozenset[str] = frozenset({"spec.tolerations"})
"""Lists admission appends to (DefaultTolerationSeconds: not-ready and unreachable for 300 s)."""


def contains(whole: Any, part: Any, path: str = "") -> list[str]:
    """Where `part` is not found unchanged in `whole`: dict keys may be added (the apiserver's defaults),
    nothing written may change or go."""
    if isinstance(part, dict):
        if not isinstance(whole, dict):
            return [f"{path}: {whole!r} is not an object"]
        return [p for k, v in part.items() for p in contains(whole.get(k), v, f"{path}.{k}")]  # pyright: ignore
    if isinstance(part, list):
        if path in APPENDED and isinstance(whole, list):
            whole = whole[: len(part)]  # pyright: ignore[reportUnknownVariableType]
        if not isinstance(whole, list) or len(whole) != len(part):  # pyright: ignore[reportUnknownArgumentType]
            return [f"{path}: {whole!r} != {part!r}"]
        return [
            p
            for i, (w, v) in enumerate(zip(whole, part, strict=True))
            for p in contains(w, v, f"{path}[{i}]")
        ]  # pyright: ignore
    return [] if whole == part else [f"{path}: {whole!r} != {part!r}"]


def pod_spec_fields(cluster: Cluster) -> set[str]:
    """The PodSpec's top-level fields as this apiserver publishes them."""
    doc = cluster.api.get("/openapi/v3/api/v1")
    assert doc is not None
    return set(doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"])


async def worker(client: Client, namespace: str, name: str) -> JsonObject:
    async def probe() -> JsonObject | None:
        return next(
            (p for p in (await client.list(PODS, namespace)).items if p["metadata"]["name"] == name), None
        )

    return await wait_for(f"pod {name}", probe, 60)


async def test_every_pod_spec_field_of_the_template_reaches_the_pods(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(1, cpu="8")
    pool = nodes
    template = full_template(pool)
    missing = pod_spec_fields(cluster) - set(template["spec"]) - set(OWNED_POD_FIELDS) - NOT_SET
    assert not missing, f"the full template does not set {sorted(missing)}"
    cluster.api.create(
        "/apis/node.k8s.io/v1/runtimeclasses",
        {"metadata": {"name": "rdma"}, "handler": "runc"},
        exist_ok=True,
    )
    cluster.api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "trainer"}})
    body = torchjob("full", None, count=1, template=copy.deepcopy(template))
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, body, namespace)
        pod = await worker(client, namespace, "full-worker-0")
        status = await status_of(client, namespace, "full")
    spec = pod["spec"]

    # Everything written reaches the pod unchanged.
    problems = contains(pod["metadata"], template["metadata"], "metadata")
    for field, value in template["spec"].items():
        if field in ("containers", "volumes"):
            continue
        problems += contains(spec[field], value, f"spec.{field}")
    trainer, exporter = spec["containers"]
    problems += contains(trainer, {k: v for k, v in template["spec"]["containers"][0].items() if k != "env"})
    problems += contains(exporter, template["spec"]["containers"][1], "exporter")
    assert template["spec"]["containers"][0]["env"][0] in trainer["env"]
    names_ = [v["name"] for v in spec["volumes"]]
    assert names_[-3:] == ["data", "config", "ib"]
    problems += contains(spec["volumes"][-3:], template["spec"]["volumes"], "spec.volumes")
    assert not problems, problems

    # The operator's own fields are the operator's.
    assert spec["schedulerName"] == "volcano"
    assert spec["restartPolicy"] == "Never"
    assert spec["hostname"] == "full-worker-0"
    assert trainer["command"][0] == "torchrun"
    assert trainer["image"] == body["spec"]["image"]
    assert {"name": "pyroclast-shm", "mountPath": "/dev/shm"} in trainer["volumeMounts"]
    # Host networking: the job's own port, recorded in status, declared (a host port) and dialled.
    port = status["ports"]["rendezvous"]
    assert trainer["ports"][0]["containerPort"] == port
    assert trainer["ports"][0]["hostPort"] == port
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert env["PET_RDZV_ENDPOINT"].endswith(f":{port}")


async def test_two_host_network_jobs_on_one_node_get_their_own_ports(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(1, cpu="8")
    pool = nodes
    template = {"spec": {"nodeSelector": pool.node_selector, "hostNetwork": True}}
    async with operator(cluster) as client:
        for name in ("ib-a", "ib-b"):
            await client.create(TORCHJOBS, torchjob(name, None, count=1, template=template), namespace)
        running = [
            await wait_phase(client, namespace, name, "Running", within=90) for name in ("ib-a", "ib-b")
        ]
        ports = [s["ports"]["rendezvous"] for s in running]
        assert ports[0] != ports[1]
        assert all(s["ports"]["master"] == s["ports"]["rendezvous"] for s in running)
        pods = [await worker(client, namespace, f"{name}-worker-0") for name in ("ib-a", "ib-b")]
        assert pods[0]["spec"]["nodeName"] == pods[1]["spec"]["nodeName"]  # one node, no clash
        for pod, port in zip(pods, ports, strict=True):
            assert pod["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet"
            (trainer,) = pod["spec"]["containers"]
            assert trainer["ports"] == [
                {"name": "rendezvous", "containerPort": port, "hostPort": port, "protocol": "TCP"}
            ]
            env = {e["name"]: e.get("value") for e in trainer["env"]}
            assert (
                env["PET_RDZV_ENDPOINT"]
                == f"{pod['metadata']['name']}.pyroclast-workers.{namespace}.svc:{port}"
            )

    # Stable across an operator restart: the ports are read from status, not chosen again.
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("ib-c", None, count=1, template=template), namespace)
        third = await wait_phase(client, namespace, "ib-c", "Running", within=90)
        assert third["ports"]["rendezvous"] not in ports
        again = [(await status_of(client, namespace, n))["ports"]["rendezvous"] for n in ("ib-a", "ib-b")]
        assert again == ports


async def test_an_unknown_nested_field_is_refused_by_the_dry_run_before_anything_exists(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(1, cpu="4")
    pool = nodes
    # The CRD passes Kubernetes' own types through; a typo inside one only the apiserver's pod schema sees.
    template = {"spec": {"nodeSelector": pool.node_selector, "securityContext": {"runAsUsr": 1000}}}
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("typo", None, count=2, template=template), namespace)
        status = await wait_phase(client, namespace, "typo", "CreateFailed", within=60)
        cond = condition(status, "CreateFailed")
        assert cond is not None
        assert cond["reason"] == "FailedCreatePod"
        assert cond["message"].startswith("a dry run of creating Pod typo-worker-0 was refused (")
        assert "runAsUsr" in cond["message"]
        assert await names(client, PODS, namespace) == []
        assert await names(client, PODGROUPS, namespace) == []

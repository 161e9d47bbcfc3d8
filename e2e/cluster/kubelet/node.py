"""The Node object and its heartbeats: registration, Ready condition, the Lease in kube-node-lease."""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from e2e.cluster.kubelet.client import KubeClient
from e2e.cluster.kubelet.config import KubeletConfig

log = logging.getLogger(__name__)

GPU_RESOURCE = "nvidia.com/gpu"
PROCESS_NODE_ANNOTATION = "pyroclast.dev/process-node"
"""Marks a node run by the rig's kubelet stand-in; kwok manages only nodes annotated kwok.x-k8s.io/node."""
STATUS_PERIOD = 10.0
LEASE_PERIOD = 10.0


def now() -> str:
    """RFC 3339 UTC timestamp (seconds), as metav1.Time."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    """RFC 3339 UTC timestamp with microseconds, as metav1.MicroTime."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def resources(cfg: KubeletConfig) -> dict[str, str]:
    """Capacity (= allocatable: nothing is reserved for the system here)."""
    res = {"cpu": cfg.cpu, "memory": cfg.memory, "pods": str(cfg.pods), "ephemeral-storage": "100Gi"}
    if cfg.gpus:
        res[GPU_RESOURCE] = str(cfg.gpus)
    return res


def node_manifest(cfg: KubeletConfig) -> dict[str, Any]:
    """The Node as the kubelet registers it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": cfg.node,
            "labels": {
                "kubernetes.io/hostname": cfg.node,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "process",
                **cfg.labels,
            },
            "annotations": {PROCESS_NODE_ANNOTATION: "true", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"providerID": f"pyroclast-rig://{cfg.node}"},
    }


def node_status(cfg: KubeletConfig, *, ready: bool = True) -> dict[str, Any]:
    """status: capacity, the conditions the kubelet reports, InternalIP, daemonEndpoints, nodeInfo."""
    stamp = now()

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    res = resources(cfg)
    return {
        "capacity": res,
        "allocatable": dict(res),
        "conditions": [
            condition(
                "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"
            ),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition(
                "PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"
            ),
            condition(
                "Ready",
                "True" if ready else "False",
                "KubeletReady" if ready else "KubeletNotReady",
                "kubelet is posting ready status" if ready else "kubelet is stopping",
            ),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.port}},
        "nodeInfo": {
            "architecture": "amd64",
            "operatingSystem": "linux",
            "kubeletVersion": "pyroclast-rig",
            "kubeProxyVersion": "",
            "containerRuntimeVersion": "pyroclast-rig://process",
            "kernelVersion": "",
            "osImage": "pyroclast rig process node",
            "bootID": "",
            "machineID": "",
            "systemUUID": "",
        },
    }


class NodeAgent:
    """Registers the Node, keeps its status and Lease fresh."""

    def __init__(self, cfg: KubeletConfig, client: KubeClient) -> None:
        self.cfg = cfg
        self.client = client

    @property
    def path(self) -> str:
        """The Node's API path."""
        return f"/api/v1/nodes/{self.cfg.node}"

    async def register(self) -> None:
        """Create the Node (or adopt an existing one) and post its status."""
        existing = await self.client.get(self.path)
        if existing is None:
            await self.client.request("POST", "/api/v1/nodes", node_manifest(self.cfg))
        await self.post_status()
        await self.renew_lease()

    async def post_status(self, *, ready: bool = True) -> None:
        """PATCH the status subresource (conditions merge by type)."""
        await self.client.strategic_patch(
            f"{self.path}/status", {"status": node_status(self.cfg, ready=ready)}
        )

    async def renew_lease(self) -> None:
        """Create or renew coordination.k8s.io Lease kube-node-lease/<node>."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.cfg.node}"
        spec = {
            "holderIdentity": self.cfg.node,
            "leaseDurationSeconds": self.cfg.lease_seconds,
            "renewTime": micro_now(),
        }
        lease = await self.client.get(path)
        if lease is None:
            node = await self.client.get(self.path)
            owner = (
                [{"apiVersion": "v1", "kind": "Node", "name": self.cfg.node, "uid": node["metadata"]["uid"]}]
                if node
                else []
            )
            body = {"metadata": {"name": self.cfg.node, "ownerReferences": owner}, "spec": spec}
            await self.client.request(
                "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body
            )
        else:
            lease["spec"] = {**lease.get("spec", {}), **spec}
            await self.client.request("PUT", path, lease)

    async def run(self) -> None:
        """Heartbeat forever: Lease every LEASE_PERIOD, status every STATUS_PERIOD."""
        while True:
            await asyncio.sleep(LEASE_PERIOD)
            try:
                await self.renew_lease()
                await self.post_status()
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)

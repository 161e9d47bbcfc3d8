"""Fake (kwok) Node manifests with configurable capacity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"


def node_manifest(
    name: str,
    *,
    cpu: str = "8",
    memory: str = "64Gi",
    gpus: int = 0,
    pods: int = 110,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Node that kwok manages; status is set at creation and kept by kwok's node-initialize stage."""
    resources = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "1Ti"}
    if gpus:
        resources[GPU_RESOURCE] = str(gpus)
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        **(labels or {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": all_labels,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        # providerID avoids cloud-provider style deletion of nodes without one (kwok known issue).
        "spec": {"providerID": f"kwok://{name}"},
        "status": {
            "allocatable": dict(resources),
            "capacity": dict(resources),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "osImage": "",
            },
            "phase": "Running",
        },
    }


def node_ready(node: Mapping[str, Any]) -> bool:
    """Ready=True and no NoSchedule/NoExecute taint (e.g. the not-ready taint from TaintNodesByCondition)."""
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    taints = node.get("spec", {}).get("taints") or []
    blocking = [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute")]
    return ready and not blocking

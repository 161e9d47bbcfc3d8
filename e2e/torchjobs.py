"""TorchJob manifests for cluster tests and benchmarks: small CPU gangs pinned to a test's own kwok nodes."""

from __future__ import annotations

from typing import Any

from e2e.cluster.pool import NodePool

JsonObject = dict[str, Any]


def torchjob(
    name: str,
    pool: NodePool | None,
    *,
    count: int = 2,
    cpu: str | None = "1",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> JsonObject:
    """A fixed-size job of `count` workers requesting `cpu` each (no resources when None), on `pool`'s nodes.

    `annotations` reach every worker pod, which is how tests drive kwok outcomes
    (`pyroclast.dev/test-succeed-after`, ...); `spec` adds or replaces top-level spec fields."""
    template: JsonObject = {"metadata": {"annotations": annotations or {}}}
    if pool is not None:
        template["spec"] = {"nodeSelector": pool.node_selector}
    body: JsonObject = {
        "image": "example.invalid/train:1",
        "command": ["-m", "train"],
        "nprocPerNode": 1,
        "nodes": {"count": count},
        "template": template,
    }
    if cpu is not None:
        body["resources"] = {"requests": {"cpu": cpu, "memory": "1Gi"}}
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": name},
        "spec": {**body, **spec},
    }

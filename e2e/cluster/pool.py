"""A per-test pool of kwok nodes, isolated from other tests by a unique label."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from e2e.cluster.cluster import Cluster

POOL_LABEL = "pyroclast.dev/test-pool"


class NodePool:
    """Creates nodes labelled `pyroclast.dev/test-pool=<id>`; pods select them with `node_selector`."""

    def __init__(self, cluster: Cluster, pool_id: str | None = None) -> None:
        self.cluster = cluster
        self.id = pool_id or secrets.token_hex(4)
        self.names: list[str] = []

    @property
    def node_selector(self) -> dict[str, str]:
        """nodeSelector that confines pods to this pool."""
        return {POOL_LABEL: self.id}

    def create(
        self,
        count: int,
        *,
        cpu: str = "8",
        memory: str = "64Gi",
        gpus: int = 0,
        pods: int = 110,
        labels: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Add `count` Ready nodes to the pool and return their names."""
        names = self.cluster.create_nodes(
            count,
            cpu=cpu,
            memory=memory,
            gpus=gpus,
            pods=pods,
            labels={**(labels or {}), POOL_LABEL: self.id},
            prefix=f"pool-{self.id}",
        )
        self.names += names
        return names

    __call__ = create

    def delete_all(self) -> None:
        """Delete every node of the pool."""
        if self.names:
            self.cluster.delete_nodes(self.names)
            self.names = []

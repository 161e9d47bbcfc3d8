"""What one process node's kubelet stand-in is told at start (a JSON file written by the Cluster)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class KubeletConfig:
    """Node identity and capacity, apiserver credentials, the pod network and where pods' files live."""

    node: str
    index: int
    server: str
    ca: str
    client_cert: str
    client_key: str
    serving_cert: str
    serving_key: str
    network: str
    """`PodNetwork.to_json()` of the rig."""
    port: int
    root: str
    """This node's directory: pods' volumes, logs and container scratch space."""
    claims_root: str
    """Per namespace/claim directories of persistentVolumeClaim volumes, shared by every node of the rig."""
    python: str
    """The project's virtualenv interpreter: what runs the sandbox, and its bin directory heads PATH."""
    source: str
    """The checkout pods import the project from (PYTHONPATH)."""
    cpu: str = "8"
    memory: str = "64Gi"
    gpus: int = 0
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict[str, str])
    apiserver_host: str | None = None
    """Where pods reach the apiserver (KUBERNETES_SERVICE_HOST), e.g. a forwarder on the bridge."""
    apiserver_port: int | None = None
    cluster_domain: str = "cluster.local"
    lease_seconds: int = 40

    def dump(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> KubeletConfig:
        """Read what `dump` wrote."""
        data: dict[str, Any] = json.loads(path.read_text())
        return cls(**data)

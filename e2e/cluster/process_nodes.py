"""Process nodes of a Cluster: one kubelet stand-in process per node (see `e2e.cluster.kubelet`).

kwok keeps the fake nodes (annotated `kwok.x-k8s.io/node=fake`); process nodes carry
`pyroclast.dev/process-node` instead, so the two never manage the same node. Stopping a node's kubelet is a
node loss: its pods' processes end with it and the Node goes NotReady when its Lease expires; `start` brings
the same node back (the same name and pod CIDR).
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from e2e.cluster.api import WaitTimeoutError, wait_for
from e2e.cluster.kubelet.config import KubeletConfig
from e2e.cluster.nodes import node_ready
from e2e.cluster.pool import POOL_LABEL
from e2e.cluster.ports import free_port
from e2e.cluster.process import Component

if TYPE_CHECKING:
    from e2e.cluster.cluster import Cluster

SOURCE = Path(__file__).resolve().parents[2]


class ProcessNodes:
    """The kubelet processes of one Cluster, by node name."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._components: dict[str, Component] = {}
        self._next_index = 0
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """Every process node created (running or stopped)."""
        return list(self._components)

    def running(self, name: str) -> bool:
        """Whether the node's kubelet runs."""
        comp = self._components.get(name)
        return comp is not None and comp.running

    def _config(
        self, name: str, index: int, cpu: str, memory: str, gpus: int, pods: int, labels: Mapping[str, str]
    ) -> Path:
        c = self.cluster
        net = c.ensure_pod_network()
        lay = c._require_layout()
        admin = c._admin
        assert admin is not None
        serving = lay.pki.serving_cert(name)
        root = c.workdir / "process-nodes" / name
        root.mkdir(parents=True, exist_ok=True)
        cfg = KubeletConfig(
            node=name,
            index=index,
            server=lay.server,
            ca=str(lay.pki.serving_ca),
            client_cert=str(admin.cert),
            client_key=str(admin.key),
            serving_cert=str(serving.cert),
            serving_key=str(serving.key),
            network=net.to_json(),
            port=free_port(),
            root=str(root),
            claims_root=str(c.workdir / "claims"),
            python=sys.executable,
            source=str(SOURCE),
            cpu=cpu,
            memory=memory,
            gpus=gpus,
            pods=pods,
            labels=dict(labels),
            apiserver_host=c.pod_host,
            apiserver_port=c.pod_apiserver_port,
        )
        path = root / "kubelet.json"
        cfg.dump(path)
        return path

    def _component(self, name: str, config: Path) -> Component:
        cfg = KubeletConfig.load(config)
        url = f"https://127.0.0.1:{cfg.port}/healthz"
        env = {**os.environ, "PYTHONPATH": str(SOURCE)}
        return Component(
            name=f"kubelet-{name}",
            argv=[sys.executable, "-m", "e2e.cluster.kubelet", str(config)],
            log_path=self.cluster.workdir / "logs" / f"kubelet-{name}.log",
            healthy=lambda: httpx.get(url, verify=False, timeout=2).status_code == 200,
            start_timeout=60.0,
            stop_timeout=20.0,
            env=env,
        )

    def _launch(self, comp: Component) -> None:
        comp.launch()
        net = self.cluster.pod_network
        if net is not None and comp.pid is not None:
            net.record_pid(comp.pid)

    def create(
        self,
        count: int,
        *,
        cpu: str = "8",
        memory: str = "64Gi",
        gpus: int = 0,
        pods: int = 110,
        labels: Mapping[str, str] | None = None,
        prefix: str = "proc",
        timeout: float = 60.0,
    ) -> list[str]:
        """Start `count` process nodes and wait until each is Ready and untainted."""
        token = secrets.token_hex(3)
        names = [f"{prefix}-{token}-{i}" for i in range(count)]
        for name in names:
            with self._lock:
                index = self._next_index
                self._next_index += 1
            config = self._config(name, index, cpu, memory, gpus, pods, labels or {})
            comp = self._component(name, config)
            self._components[name] = comp
            self._launch(comp)
        for name in names:
            self._components[name].wait_healthy()
            self.wait_ready(name, timeout)
        return names

    def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        """Wait until the Node is Ready with no NoSchedule/NoExecute taint."""
        api = self.cluster.api
        try:
            wait_for(
                f"process node {name} Ready and untainted",
                lambda: node_ready(api.get(f"/api/v1/nodes/{name}") or {}),
                timeout,
            )
        except WaitTimeoutError as exc:
            comp = self._components[name]
            raise WaitTimeoutError(f"{exc}\nkubelet log:\n{comp.tail(20)}") from None

    def stop(self, name: str) -> None:
        """Stop the node's kubelet (a node loss: its pods' processes end; the Node object stays)."""
        comp = self._components[name]
        pid = comp.pid
        comp.stop()
        if pid is not None and self.cluster.pod_network is not None:
            self.cluster.pod_network.forget_pid(pid)

    def start(self, name: str, timeout: float = 60.0) -> None:
        """Start a stopped node's kubelet again and wait until the node is Ready."""
        comp = self._components[name]
        self._launch(comp)
        comp.wait_healthy()
        self.wait_ready(name, timeout)

    def delete(self, names: Sequence[str], timeout: float = 60.0) -> None:
        """Stop the kubelets and delete the Node objects."""
        for name in names:
            if name in self._components:
                self.stop(name)
        self.cluster.delete_nodes(list(names), timeout=timeout)
        for name in names:
            self._components.pop(name, None)

    def stop_all(self) -> None:
        """Stop every kubelet (the rig is stopping)."""
        for name in list(self._components):
            self.stop(name)

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The end of a kubelet's log."""
        return self._components[name].tail(lines)


class ProcessNodePool:
    """Per-test process nodes labelled `pyroclast.dev/test-pool=<id>` (pods select them by node_selector)."""

    def __init__(self, cluster: Cluster, pool_id: str | None = None) -> None:
        self.cluster = cluster
        self.id = pool_id or secrets.token_hex(4)
        self.names: list[str] = []

    @property
    def node_selector(self) -> dict[str, str]:
        """nodeSelector confining pods to this pool."""
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
        """Add `count` Ready process nodes to the pool and return their names."""
        names = self.cluster.create_process_nodes(
            count,
            cpu=cpu,
            memory=memory,
            gpus=gpus,
            pods=pods,
            labels={**(labels or {}), POOL_LABEL: self.id},
            prefix=f"proc-{self.id}",
        )
        self.names += names
        return names

    __call__ = create

    def delete_all(self) -> None:
        """Stop and delete every node of the pool."""
        if self.names:
            self.cluster.process_nodes.delete(self.names)
            self.names = []

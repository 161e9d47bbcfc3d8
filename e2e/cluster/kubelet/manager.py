"""The pods bound to this node: a watch on `spec.nodeName`, a PodWorker per pod, log lookup for the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e.cluster.kubelet import logs
from e2e.cluster.kubelet.client import ApiStatusError, KubeClient
from e2e.cluster.kubelet.config import KubeletConfig
from e2e.cluster.kubelet.env import Fetch
from e2e.cluster.kubelet.node import resources
from e2e.cluster.kubelet.pod import PodWorker
from e2e.cluster.network import IpAllocator, PodNetwork

log = logging.getLogger(__name__)

JSON = dict[str, Any]
WATCH_SECONDS = 240


class PodManager:
    """Starts a worker for every pod bound here and feeds it updates; forgets it when it is done."""

    def __init__(self, cfg: KubeletConfig, client: KubeClient) -> None:
        self.cfg = cfg
        self.client = client
        self.network = PodNetwork.from_json(cfg.network)
        self.ips = IpAllocator(self.network.node_cidr(cfg.index))
        self.root = Path(cfg.root)
        self.claims_root = Path(cfg.claims_root)
        self.python = cfg.python
        interpreter = Path(cfg.python).resolve()  # a virtualenv's python links to its base installation
        self.expose_paths = [str(interpreter.parent.parent), str(Path(cfg.python).parent.parent), cfg.source]
        """What a non-root container must be able to reach: the base interpreter, the venv, the checkout."""
        self.source = cfg.source
        self.cluster_domain = cfg.cluster_domain
        self.allocatable = resources(cfg)
        self.service_env: dict[str, str] = {}
        if cfg.apiserver_host and cfg.apiserver_port:
            host, port = cfg.apiserver_host, str(cfg.apiserver_port)
            self.service_env = {
                "KUBERNETES_SERVICE_HOST": host,
                "KUBERNETES_SERVICE_PORT": port,
                "KUBERNETES_SERVICE_PORT_HTTPS": port,
                "KUBERNETES_PORT": f"tcp://{host}:{port}",
                "KUBERNETES_PORT_443_TCP": f"tcp://{host}:{port}",
                "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
                "KUBERNETES_PORT_443_TCP_PORT": port,
                "KUBERNETES_PORT_443_TCP_ADDR": host,
            }
        self.workers: dict[str, PodWorker] = {}
        self.finished: dict[tuple[str, str], PodWorker] = {}
        """Pods whose worker ended but whose object still exists (their logs stay readable)."""

    def fetcher(self, namespace: str) -> Fetch:
        """ConfigMaps and Secrets of one namespace, for env and volumes."""

        async def fetch(kind: str, name: str) -> JSON | None:
            return await self.client.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")

        return fetch

    def forget(self, worker: PodWorker) -> None:
        """The worker ended; keep it for log reads until the pod object goes."""
        self.workers.pop(worker.uid, None)
        if not worker.removed and not worker.deleting.is_set():
            self.finished[(worker.namespace, worker.name)] = worker

    def _handle(self, kind: str, pod: JSON) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        key = (meta["namespace"], meta["name"])
        if kind == "DELETED":
            finished = self.finished.get(key)
            if finished is not None and finished.uid == uid:
                del self.finished[key]
            worker = self.workers.get(uid)
            if worker is not None:
                worker.gone()
            return
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return
        old = self.finished.get(key)
        if old is not None and old.uid == uid:
            return
        worker = PodWorker(self, pod)
        self.workers[uid] = worker
        worker.task = asyncio.create_task(worker.run(), name=f"pod {key[0]}/{key[1]}")
        log.info("pod %s/%s admitted", *key)

    async def run(self) -> None:
        """List+watch the node's pods forever."""
        path = "/api/v1/pods"
        selector = {"fieldSelector": f"spec.nodeName={self.cfg.node}"}
        while True:
            try:
                listing = await self.client.get(path, params=selector)
                assert listing is not None
                live = set()
                for pod in listing.get("items") or []:
                    live.add(pod["metadata"]["uid"])
                    self._handle("MODIFIED", pod)
                for uid, worker in list(self.workers.items()):
                    if uid not in live:
                        worker.gone()
                rv = listing["metadata"]["resourceVersion"]
                while True:
                    params = {**selector, "resourceVersion": rv, "timeoutSeconds": str(WATCH_SECONDS)}
                    async for event in self.client.watch(path, params):
                        kind = event.get("type")
                        obj = event.get("object") or {}
                        if kind == "ERROR":
                            raise ApiStatusError("WATCH", path, int(obj.get("code") or 500), str(obj))
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            self._handle(kind, obj)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pod watch: %s; relisting", exc)
                await asyncio.sleep(1)

    def log_lookup(
        self, namespace: str, pod: str, container: str, previous: bool
    ) -> tuple[Path, Callable[[], bool]] | None:
        """The log kubectl asks for (the current or the previous start) and whether it is still written."""
        worker = next((w for w in self.workers.values() if (w.namespace, w.name) == (namespace, pod)), None)
        worker = worker or self.finished.get((namespace, pod))
        if worker is None:
            return None
        c = worker.container(container)
        if c is None:
            return None
        restart = c.restarts - 1 if previous else c.restarts
        if restart < 0:
            return None
        path = logs.log_path(worker.dir, container, restart)
        if not path.exists():
            return None
        run = c.run

        def running() -> bool:
            return not previous and run is not None and run.exit_code is None and run.proc.returncode is None

        return path, running

"""`python -m e2e.cluster.kubelet <config.json>`: one process node (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from e2e.cluster.kubelet.client import KubeClient
from e2e.cluster.kubelet.config import KubeletConfig
from e2e.cluster.kubelet.manager import PodManager
from e2e.cluster.kubelet.node import NodeAgent
from e2e.cluster.kubelet.server import KubeletServer

log = logging.getLogger("e2e.cluster.kubelet")


async def serve(cfg: KubeletConfig) -> None:
    """Register the node, serve logs, run pods until SIGTERM; then kill every pod of this node."""
    client = KubeClient(cfg.server, cfg.ca, cfg.client_cert, cfg.client_key)
    manager = PodManager(cfg, client)
    server = KubeletServer(cfg.port, cfg.serving_cert, cfg.serving_key, manager.log_lookup)
    await server.start()
    node = NodeAgent(cfg, client)
    await node.register()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(node.run()), asyncio.create_task(manager.run())]
    log.info("node %s ready (kubelet port %d)", cfg.node, cfg.port)
    await stop.wait()
    log.info("node %s stopping: its pods' processes end with it", cfg.node)
    for t in tasks:
        t.cancel()
    for worker in list(manager.workers.values()):
        if worker.task is not None:
            worker.task.cancel()
    await asyncio.gather(*(w.task for w in manager.workers.values() if w.task), return_exceptions=True)
    await server.close()
    with contextlib.suppress(Exception):
        await client.aclose()


def main(argv: list[str]) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = KubeletConfig.load(Path(argv[1]))
    asyncio.run(serve(cfg))


if __name__ == "__main__":
    main(sys.argv)

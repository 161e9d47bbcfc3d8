"""The rendezvous endpoint: a standalone c10d TCPStore that outlives every worker pod.

Run ``python -m workloads.rendezvous --host 0.0.0.0 --port 29400`` in a small CPU pod behind a Service and
give every torchrun ``PET_RDZV_BACKEND=c10d``, ``PET_RDZV_ENDPOINT=<service>:29400`` and
``PET_RDZV_CONF=is_host=false,...``. The store is in memory: restarting it ends the attempt, and every
attempt needs a new ``PET_RDZV_ID``. Prints one JSON line ``{"event": "ready", "host", "port"}`` when
listening, then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from datetime import timedelta
from types import FrameType

from torch.distributed import TCPStore  # pyright: ignore[reportPrivateImportUsage]

from api import contract

log = logging.getLogger(__name__)


def serve(host: str, port: int, stop: threading.Event) -> int:
    """Serve the store until ``stop`` is set; returns the port it listened on."""
    store = TCPStore(
        host, port, is_master=True, multi_tenant=True, wait_for_workers=False, timeout=timedelta(seconds=60)
    )
    print(json.dumps({"event": "ready", "host": host, "port": store.port}), flush=True)
    while not stop.wait(1.0):
        pass
    log.info("rendezvous store on %s:%d stopping", host, store.port)
    return store.port


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description="Standalone c10d rendezvous store for torchrun agents.")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default all)")
    parser.add_argument("--port", type=int, default=contract.DEFAULT_RDZV_PORT, help="0 picks a free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serve(args.host, args.port, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())

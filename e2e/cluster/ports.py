"""Free loopback ports, the envtest way: bind port 0, read the port, close, and avoid handing it out twice."""

from __future__ import annotations

import socket
import threading

HOST = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` (loopback unless named, e.g. the pod network's host address) that was free a
    moment ago and not returned before by this process."""
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port: int = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free loopback port found after 100 tries")


def is_listening(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0

"""When each pod of a namespace was first seen and first seen Running, from a watch (a background thread)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import httpx

from e2e.cluster import Cluster
from e2e.cluster.api import ApiError

POD_EVENTS = ("ADDED", "MODIFIED", "DELETED")


@dataclass
class PodWatch:
    """A background watch of a namespace's pods (listed first, relisted after a 410); subclasses keep what
    they need in :meth:`_see`."""

    cluster: Cluster
    namespace: str
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Self:
        """Start watching; returns once the first list is in (the namespace's current pods seen now)."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(30)
        return self

    def stop(self) -> None:
        """Stop after the current watch request returns (at most a few seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def _see(self, event: str, pod: dict[str, Any], now: float) -> None:
        """One pod as listed (``ADDED``) or from a watch event (``ADDED``, ``MODIFIED``, ``DELETED``)."""
        raise NotImplementedError

    def _relisted(self) -> None:
        """A full list follows: forget what only a list can correct."""

    def _run(self, ready: threading.Event) -> None:
        api = self.cluster.new_api()
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        rv = ""
        try:
            while not self._stop.is_set():
                if not rv:
                    listed = api.get(path) or {}
                    now = time.monotonic()
                    self._relisted()
                    for pod in listed.get("items") or []:
                        self._see("ADDED", pod, now)
                    rv = str((listed.get("metadata") or {}).get("resourceVersion", ""))
                    ready.set()
                try:
                    for event in api.watch(path, rv, timeout_seconds=5):
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            rv = ""  # 410: relist
                            break
                        rv = str((obj.get("metadata") or {}).get("resourceVersion", rv))
                        if event.get("type") in POD_EVENTS:  # not a BOOKMARK (no pod in it)
                            self._see(str(event["type"]), obj, time.monotonic())
                        if self._stop.is_set():
                            break
                except (httpx.HTTPError, ApiError):
                    time.sleep(0.2)
        finally:
            api.close()


@dataclass
class PodTimeline(PodWatch):
    """Monotonic receive times per pod name: `created` (first event) and `running` (first phase Running)."""

    created: dict[str, float] = field(default_factory=dict[str, float])
    running: dict[str, float] = field(default_factory=dict[str, float])

    def _see(self, event: str, pod: dict[str, Any], now: float) -> None:
        if event == "DELETED":
            return
        meta = pod.get("metadata") or {}
        name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
        self.created.setdefault(name, now)
        status = pod.get("status") or {}
        if isinstance(status, dict) and status.get("phase") == "Running":
            self.running.setdefault(name, now)

    def series(self, t0: float, step: float = 1.0) -> list[tuple[float, int, int]]:
        """(seconds since t0, pods created, pods Running) every `step` seconds until the last event."""
        created = sorted(t - t0 for t in self.created.values())
        running = sorted(t - t0 for t in self.running.values())
        end = max(created[-1:] + running[-1:] + [0.0])
        out: list[tuple[float, int, int]] = []
        i = j = 0
        t = 0.0
        while True:
            while i < len(created) and created[i] <= t:
                i += 1
            while j < len(running) and running[j] <= t:
                j += 1
            out.append((round(t, 3), i, j))
            if t >= end:
                return out
            t += step

"""Pieces of the scale benchmark (P1, P2, P4, P5): raw create rate, timed phases, clean-up, probes."""

from __future__ import annotations

import contextlib
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx

from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS, Resource
from e2e.bench.timeline import PodTimeline
from e2e.cluster import Cluster
from e2e.cluster.ports import HOST

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def pending_pod(i: int) -> JsonObject:
    """A worker-sized pod no scheduler picks up (it stays Pending and costs nothing after its create)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"raw-{i:06d}", "labels": {"bench": "raw"}},
        "spec": {
            "schedulerName": "bench-nobody",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "trainer",
                    "image": "example.invalid/train:1",
                    "command": ["torchrun", "--nnodes=8", "-m", "train"],
                    "env": [{"name": f"PET_VAR_{k}", "value": str(k)} for k in range(10)],
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                }
            ],
        },
    }


async def create_all(
    client: Client, resource: Resource, namespace: str, bodies: list[JsonObject], concurrency: int
) -> float:
    """Create every body with `concurrency` requests in flight; returns the seconds it took."""
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(body: JsonObject) -> None:
        async with limiter:
            await client.create(resource, body, namespace)

    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        for body in bodies:
            tg.start_soon(one, body)
    return time.monotonic() - start


def raw_create_rate(cluster: Cluster, namespace: str, pods: int, concurrency: int = 32) -> float:
    """Pods/s a plain concurrent client (this process, unthrottled, `concurrency` in flight) gets created."""

    async def run() -> float:
        client = await Client.connect(cluster.kubeconfig)
        try:
            bodies = [pending_pod(i) for i in range(pods)]
            return await create_all(client, PODS, namespace, bodies, concurrency)
        finally:
            await client.aclose()

    return pods / anyio.run(run)


def submit(cluster: Cluster, resource: Resource, namespace: str, bodies: list[JsonObject]) -> float:
    """Create the jobs (16 in flight, as a busy CI system would); returns the seconds it took."""

    async def run() -> float:
        client = await Client.connect(cluster.kubeconfig)
        try:
            return await create_all(client, resource, namespace, bodies, 16)
        finally:
            await client.aclose()

    return anyio.run(run)


@dataclass
class Phase:
    """One operator's run: its pods' timeline from the first job submitted (t0)."""

    label: str
    pods: int
    t0: float
    submit_seconds: float = 0.0
    timeline: PodTimeline | None = None
    timed_out: bool = False
    timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    def _last(self, times: dict[str, float]) -> float | None:
        return max(times.values()) - self.t0 if len(times) >= self.pods else None

    @property
    def created_seconds(self) -> float | None:
        """Seconds until the last pod was created (None: not all were)."""
        return self._last(self.timeline.created) if self.timeline else None

    @property
    def running_seconds(self) -> float | None:
        """Seconds until every pod was Running (None: not all were)."""
        return self._last(self.timeline.running) if self.timeline else None

    @property
    def create_rate(self) -> float | None:
        """Pods created per second, from the first job submitted to the last pod created."""
        s = self.created_seconds
        return self.pods / s if s else None

    def summary(self) -> JsonObject:
        """Figures and the time series, for the JSON record."""
        assert self.timeline is not None
        return {
            "label": self.label,
            "pods": self.pods,
            "submit_seconds": round(self.submit_seconds, 2),
            "created": len(self.timeline.created),
            "running": len(self.timeline.running),
            "created_seconds": self.created_seconds,
            "running_seconds": self.running_seconds,
            "create_rate": self.create_rate,
            "timed_out": self.timed_out,
            "timeout_seconds": self.timeout,
            **self.extra,
            "series": self.timeline.series(self.t0),
        }


def run_phase(
    cluster: Cluster,
    label: str,
    namespace: str,
    resource: Resource,
    bodies: list[JsonObject],
    pods: int,
    timeout: float,
    *,
    until: Literal["created", "running"] = "running",
) -> Phase:
    """Submit `bodies`; wait until `pods` pods in `namespace` are Running, or only created (or `timeout`)."""
    timeline = PodTimeline(cluster, namespace).start()
    phase = Phase(label=label, pods=pods, t0=time.monotonic(), timeline=timeline, timeout=timeout)
    phase.submit_seconds = submit(cluster, resource, namespace, bodies)
    deadline = phase.t0 + timeout
    seen = timeline.running if until == "running" else timeline.created
    while len(seen) < pods:
        if time.monotonic() > deadline:
            phase.timed_out = True
            break
        time.sleep(0.5)
    timeline.stop()
    return phase


def clear_namespace(cluster: Cluster, namespace: str, collections: list[str], timeout: float = 600) -> None:
    """Delete everything the phase made (pods at once, grace 0) and the namespace; wait until it is gone."""
    body = {"gracePeriodSeconds": 0, "propagationPolicy": "Background"}
    for path in [*collections, f"/api/v1/namespaces/{namespace}/pods"]:
        # Thousands of objects outlast the client's timeout; the server goes on deleting.
        with contextlib.suppress(httpx.TimeoutException):
            cluster.api.request("DELETE", path, body=body)
    cluster.api.delete(f"/api/v1/namespaces/{namespace}")
    deadline = time.monotonic() + timeout
    while cluster.api.get(f"/api/v1/namespaces/{namespace}") is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"namespace {namespace} not gone in {timeout:.0f} s")
        time.sleep(1)


def _samples(port: int) -> list[re.Match[str]]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return [m for m in map(_SAMPLE.match, text.splitlines()) if m is not None]


def metrics(port: int) -> dict[str, float]:
    """The operator's /metrics, summed per metric name (labels dropped)."""
    out: dict[str, float] = {}
    for match in _samples(port):
        out[match["name"]] = out.get(match["name"], 0.0) + float(match["value"])
    return out


def writes(port: int) -> float:
    """The operator's write requests so far (rest_client_requests_total, POST/PUT/PATCH/DELETE)."""
    methods = tuple(f'method="{m}"' for m in ("POST", "PUT", "PATCH", "DELETE"))
    return sum(
        float(m["value"])
        for m in _samples(port)
        if m["name"] == "rest_client_requests_total" and any(x in (m["labels"] or "") for x in methods)
    )


def jobs_in_phase(cluster: Cluster, namespace: str, resource: str, phase: str) -> int:
    """How many of the namespace's jobs report `phase` in their status."""
    listed = cluster.api.get(f"/apis/pyroclast.dev/v1alpha1/namespaces/{namespace}/{resource}") or {}
    return sum(1 for j in listed.get("items") or [] if (j.get("status") or {}).get("phase") == phase)


def ready(port: int) -> bool:
    """Whether the operator's /readyz answers 200 (every informer synced)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def wait_steady(metrics_port: int, reconciles: int, quiet: float = 2.0, timeout: float = 120) -> float:
    """Seconds until at least `reconciles` reconciles ran and the queue stayed empty and idle `quiet` s."""
    start = time.monotonic()
    last_total, quiet_since = -1.0, time.monotonic()
    while time.monotonic() - start < timeout:
        m = _safe(lambda: metrics(metrics_port))
        total = m.get("controller_runtime_reconcile_total", 0.0)
        busy = m.get("workqueue_depth", 1.0) > 0 or m.get("controller_runtime_active_workers", 0.0) > 0
        if total != last_total or busy or total < reconciles:
            last_total, quiet_since = total, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet:
            return quiet_since - start
        time.sleep(0.1)
    raise TimeoutError(f"operator not steady in {timeout:.0f} s")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident set size of a process (or its peak, ``VmHWM``), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def _safe(probe: Callable[[], dict[str, float]]) -> dict[str, float]:
    try:
        return probe()
    except OSError:
        return {}

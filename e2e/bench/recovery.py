"""The failure-recovery scenario: running gangs, one worker of each deleted at once, until all run again.

Pods of every operator here are named ``<job>-worker-<i>`` (TorchJob and the vcjob task named ``worker``), so
one watch of the namespace tells, per job, how many of its current pods are Running. A pod counts as
recreated when its UID was not in the namespace before the deletes; an operator that restarts the whole gang
(the TorchJob does: its workers rendezvous again) recreates all of it, one that replaces the lost pod
recreates one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import anyio

from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS
from e2e.bench.timeline import PodWatch
from e2e.cluster import Cluster


def job_of(pod: str) -> str:
    """The job of a pod named ``<job>-worker-<i>``."""
    return pod.rsplit("-", 2)[0]


@dataclass
class GangWatch(PodWatch):
    """Every pod of a namespace by UID: its job, phase, whether it is going away; when each was first seen."""

    pods: dict[str, tuple[str, str, bool]] = field(default_factory=dict[str, tuple[str, str, bool]])
    first_seen: dict[str, float] = field(default_factory=dict[str, float])
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def running_gangs(self, jobs: int, workers: int, replaced: set[str] | None = None) -> bool:
        """Whether `jobs` jobs each have `workers` Running pods and no pod is going away; with `replaced`
        (UIDs from before the deletes), each job also has a pod not among them (the watch saw the loss)."""
        per_job: dict[str, int] = {}
        fresh: set[str] = set()
        with self._lock:
            for uid, (job, phase, leaving) in self.pods.items():
                if leaving:
                    return False
                if phase == "Running":
                    per_job[job] = per_job.get(job, 0) + 1
                if replaced is not None and uid not in replaced:
                    fresh.add(job)
        if replaced is not None and len(fresh) < jobs:
            return False
        return len(per_job) == jobs and all(n == workers for n in per_job.values())

    def uids(self) -> set[str]:
        """UIDs of the pods there now."""
        with self._lock:
            return set(self.pods)

    def _relisted(self) -> None:
        with self._lock:
            self.pods.clear()

    def _see(self, event: str, pod: JsonObject, now: float) -> None:
        meta: JsonObject = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        with self._lock:
            if event == "DELETED":
                self.pods.pop(uid, None)
                return
            self.first_seen.setdefault(uid, now)
            phase = str((pod.get("status") or {}).get("phase", ""))
            self.pods[uid] = (job_of(str(meta.get("name", ""))), phase, bool(meta.get("deletionTimestamp")))


def delete_one_worker_each(cluster: Cluster, namespace: str, jobs: list[str], concurrency: int = 32) -> float:
    """Delete ``<job>-worker-0`` of every job at once (grace 0); returns the seconds the deletes took."""

    async def run() -> float:
        client = await Client.connect(cluster.kubeconfig)
        limiter = anyio.CapacityLimiter(concurrency)

        async def one(job: str) -> None:
            async with limiter:
                await client.delete(PODS, f"{job}-worker-0", namespace, grace_period_seconds=0)

        try:
            start = time.monotonic()
            async with anyio.create_task_group() as tg:
                for job in jobs:
                    tg.start_soon(one, job)
            return time.monotonic() - start
        finally:
            await client.aclose()

    return anyio.run(run)


def recover(cluster: Cluster, namespace: str, jobs: list[str], workers: int, timeout: float) -> JsonObject:
    """Kill one worker of every (running) job at once; seconds until every gang is Running again, pods
    recreated and their rate (from the first delete to the last recreated pod seen)."""
    watch = GangWatch(cluster, namespace).start()
    try:
        if not watch.running_gangs(len(jobs), workers):
            raise RuntimeError(f"not every gang in {namespace} is Running before the deletes")
        before = watch.uids()
        t0 = time.monotonic()
        delete_seconds = delete_one_worker_each(cluster, namespace, jobs)
        recovered: float | None = None
        while time.monotonic() - t0 < timeout:
            if watch.running_gangs(len(jobs), workers, replaced=before):
                recovered = time.monotonic() - t0
                break
            time.sleep(0.2)
        new = {uid: t - t0 for uid, t in watch.first_seen.items() if uid not in before}
    finally:
        watch.stop()
    last = max(new.values(), default=0.0)
    return {
        "jobs": len(jobs),
        "workers": workers,
        "killed": len(jobs),
        "delete_seconds": round(delete_seconds, 2),
        "recovered_seconds": None if recovered is None else round(recovered, 2),
        "recreated": len(new),
        "recreate_rate": round(len(new) / last, 1) if new and last > 0 else None,
        "timed_out": recovered is None,
        "timeout_seconds": timeout,
    }

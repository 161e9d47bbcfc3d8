"""Micro-benchmark: no-op reconciles per second of a Running TorchJob, in process, without a cluster.

Run: ``python -m e2e.bench.bench_reconcile [--jobs 200] [--workers 8] [--passes 5] [--profile]``. Builds M
TorchJobs on the fake API server (controller.runtime.fakeapi), reconciles each until its PodGroup, Service and
N worker pods exist, marks the pods Running (with kubelet-like status) and the PodGroup Running, reconciles
until every job shows Running, then times passes of one reconcile per job: the work an operator restarted
after a kill -9 does per job once its caches are synced. Asserts the steady passes write nothing and read
nothing from the API server (a no-op must be cache-only). ``--profile`` prints cProfile's top functions. Then,
as after a restart, a fresh manager and reconciler start on the same fake server: seconds until the caches
synced and until every job was reconciled with the queue empty (initial lists, informer events, the work queue
and M reconciles; the fake server's own encoding included).

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import time
from typing import Any

import anyio

from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.manager import Manager
from controller.runtime.objects import JsonObject
from controller.runtime.reconcile import Request
from controller.torchjob.reconciler import TorchJobReconciler

JOBS = ("apis/pyroclast.dev/v1alpha1", "torchjobs")
PODS = ("api/v1", "pods")
SERVICES = ("api/v1", "services")
PODGROUPS = ("apis/scheduling.volcano.sh/v1beta1", "podgroups")
NAMESPACE = "bench"


def job_body(name: str, workers: int) -> JsonObject:
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": name, "namespace": NAMESPACE, "creationTimestamp": "2026-11-23T11:59:58Z"},
        "spec": {
            "image": "example.invalid/train:1",
            "command": ["-m", "train"],
            "nprocPerNode": 1,
            "nodes": {"count": workers},
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
            "template": {"metadata": {"annotations": {}}, "spec": {"nodeSelector": {"pool": "bench"}}},
        },
    }


def running_status(pod: JsonObject) -> JsonObject:
    """What kubelet reports for a Running worker (enough fields to cost what a real one does)."""
    stamp = "2026-11-23T12:00:05Z"
    return {
        "phase": "Running",
        "conditions": [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
            for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "hostIP": "10.0.0.1",
        "podIP": "10.244.0.7",
        "podIPs": [{"ip": "10.244.0.7"}],
        "startTime": stamp,
        "qosClass": "Guaranteed",
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "containerID": "kwok://abc",
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": stamp}},
            }
            for c in pod["spec"]["containers"]
        ],
    }


def sync(fake: FakeApiServer, reconciler: TorchJobReconciler) -> None:
    """Bring the caches level with the fake server (the informers' job, by hand so the timing is only the
    reconcile's)."""
    for collection, cache in (
        (JOBS, reconciler.jobs),
        (PODS, reconciler.pods),
        (PODGROUPS, reconciler.podgroups),
        (SERVICES, reconciler.services),
    ):
        fake.sync_cache(collection, cache)


async def build(jobs: int, workers: int) -> tuple[FakeApiServer, TorchJobReconciler, list[Request]]:
    fake = FakeApiServer()
    requests = [Request(NAMESPACE, f"job-{i:04d}") for i in range(jobs)]
    for r in requests:
        fake.put_object(*JOBS, job_body(r.name, workers))
    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    reconciler = TorchJobReconciler(manager)
    sync(fake, reconciler)
    for r in requests:
        await reconciler.reconcile(r)
    for obj in list(fake.objects.get(PODS, {}).values()):
        pod = copy.deepcopy(obj)
        pod["spec"]["nodeName"] = "kwok-node-0"
        pod["status"] = running_status(pod)
        fake.put_object(*PODS, pod)
    for obj in list(fake.objects.get(PODGROUPS, {}).values()):
        pg = copy.deepcopy(obj)
        pg["status"] = {"phase": "Running", "running": workers}
        fake.put_object(*PODGROUPS, pg)
    for _ in range(3):
        sync(fake, reconciler)
        for r in requests:
            await reconciler.reconcile(r)
    sync(fake, reconciler)
    phases = {(o.get("status") or {}).get("phase") for o in fake.objects[JOBS].values()}
    if phases != {"Running"}:
        raise SystemExit(f"setup did not reach Running: {phases}")
    return fake, reconciler, requests


async def passes(reconciler: TorchJobReconciler, requests: list[Request], count: int) -> list[float]:
    """Reconciles per second of each pass over every job."""
    rates: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        for r in requests:
            await reconciler.reconcile(r)
        rates.append(len(requests) / (time.perf_counter() - start))
    return rates


async def restart(fake: FakeApiServer, jobs: int, workers: int) -> tuple[float, float]:
    """Seconds from start to caches synced, and to every job reconciled once with the queue empty."""
    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    controller = manager.add(TorchJobReconciler(manager).controller(workers=workers))
    done = 0
    inner = controller.reconcile

    async def counted(request: Request) -> Any:
        nonlocal done
        try:
            return await inner(request)
        finally:
            done += 1

    controller.reconcile = counted
    start = time.perf_counter()
    synced = steady = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        while not synced:
            await anyio.sleep(0.005)
            if manager.ready_checks["informers-synced"]():
                synced = time.perf_counter() - start
        while done < jobs or len(controller.queue) or controller.active:  # noqa: ASYNC110 - polling counters
            await anyio.sleep(0.005)
        steady = time.perf_counter() - start
        manager.stop()
    return synced, steady


async def main_async(args: argparse.Namespace) -> None:
    fake, reconciler, requests = await build(args.jobs, args.workers)
    before = len(fake.requests)
    await passes(reconciler, requests, 1)  # warm-up
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        rates = await passes(reconciler, requests, args.passes)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    else:
        rates = await passes(reconciler, requests, args.passes)
    calls = fake.requests[before:]
    if calls:
        raise SystemExit(f"a no-op reconcile made API calls: {calls[:5]}")
    best = max(rates)
    print(
        f"no-op reconcile, {args.jobs} Running jobs x {args.workers} workers: "
        f"best {best:,.0f}/s ({1000 / best:.3f} ms each), median {sorted(rates)[len(rates) // 2]:,.0f}/s"
    )
    before = len(fake.requests)
    synced, steady = await restart(fake, args.jobs, args.reconcile_workers)
    writes = [(m, p) for m, p, _ in fake.requests[before:] if m != "GET"]
    if writes:
        raise SystemExit(f"the restarted operator wrote: {writes[:5]}")
    print(f"restart: caches synced {synced:.2f} s, every job reconciled and queue empty {steady:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description="in-process no-op reconcile rate")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--reconcile-workers", type=int, default=16, help="the restarted controller's")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()

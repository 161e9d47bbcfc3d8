"""Benchmark of the controller runtime: informer ingest rate, RSS per cached Pod, queue throughput.

Run: ``python -m e2e.bench.bench_runtime [--pods 10000] [--quick] [--compact] [--kubeconfig PATH]``
(or ``--cluster`` to start the local rig for the real-apiserver figure).

* Informer ingest: an informer lists N Pods (pages of 500) and delivers every add to a handler;
  the rate is N / (time to synced + all handlers drained). From the in-memory fake API server
  (the response bytes are real JSON, so decoding is included) and, with ``--kubeconfig``, from a
  real apiserver (N Pods created in a fresh namespace first).
* Memory: RSS growth while the cache fills, divided by N, and the Python heap retained by the
  cache (tracemalloc), divided by N. Pods are realistic (~4 KB of JSON each, managedFields
  included, which the default transform strips).
* Work queue: distinct keys through add/get/done by 8 workers, and a full controller path
  (queue + metrics + no-op reconcile span) in reconciles/s.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import secrets
import time
import tracemalloc
from typing import Any

import anyio
import anyio.to_thread

from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.errors import NotFound
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.informer import Informer, InformerEvent
from controller.runtime.objects import JsonObject
from controller.runtime.reconcile import Request
from controller.runtime.resource import NAMESPACES, PODS, Resource
from controller.runtime.transport import Response
from controller.runtime.workqueue import QueueShutDown, WorkQueue

SERVICE_ACCOUNTS = Resource("", "v1", "ServiceAccount", "serviceaccounts")


def rss_bytes() -> int:
    """Current resident set size (from /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pod(i: int, namespace: str = "bench") -> JsonObject:
    """A realistic worker Pod of a training job (labels, owner, resources, status, managedFields)."""
    job = f"job-{i // 8}"
    name = f"{job}-worker-{i % 8}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"{i:08d}-1111-2222-3333-444444444444",
            "labels": {
                "app.kubernetes.io/name": "pyroclast",
                "pyroclast.dev/job-name": job,
                "pyroclast.dev/replica-type": "worker",
                "pyroclast.dev/replica-index": str(i % 8),
            },
            "annotations": {"scheduling.k8s.io/group-name": job, "pyroclast.dev/restart-count": "0"},
            "ownerReferences": [
                {
                    "apiVersion": "pyroclast.dev/v1alpha1",
                    "kind": "TorchJob",
                    "name": job,
                    "uid": f"{i // 8:08d}-aaaa-bbbb-cccc-dddddddddddd",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "pyroclast",
                    "operation": "Apply",
                    "apiVersion": "v1",
                    "time": "2026-11-23T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {f"f:{k}": {} for k in ("a", "b", "c", "d")}},
                        "f:spec": {"f:containers": {'k:{"name":"trainer"}': {".": {}, "f:image": {}}}},
                    },
                }
            ],
        },
        "spec": {
            "schedulerName": "volcano",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "trainer",
                    "image": "registry.example/pyroclast/trainer:1.0",
                    "command": ["torchrun", "--nnodes=8", "--nproc-per-node=8", "train.py"],
                    "env": [
                        {"name": "MASTER_ADDR", "value": f"{job}-worker-0.{job}"},
                        {"name": "MASTER_PORT", "value": "29500"},
                        {"name": "WORLD_SIZE", "value": "64"},
                        {"name": "RANK", "value": str(i % 8)},
                    ],
                    "resources": {
                        "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "8"},
                        "limits": {"nvidia.com/gpu": "8"},
                    },
                    "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
                }
            ],
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
            "nodeName": f"node-{i % 500}",
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-11-23T10:00:01Z"}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": "trainer",
                    "ready": True,
                    "restartCount": 0,
                    "image": "registry.example/pyroclast/trainer:1.0",
                    "state": {"running": {"startedAt": "2026-11-23T10:00:02Z"}},
                }
            ],
        },
    }


class TimedFake(FakeApiServer):
    """The fake API server, counting the seconds it spends serving (to subtract from the client's)."""

    server_seconds: float = 0.0

    async def request(self, method: str, path: str, **kwargs: Any) -> Response:  # type: ignore[override]
        start = time.perf_counter()
        try:
            return await super().request(method, path, **kwargs)
        finally:
            self.server_seconds += time.perf_counter() - start


async def ingest(
    client: Client, n: int, namespace: str | None, *, compact: bool = False
) -> tuple[float, Informer]:
    """Seconds from informer start to synced with every add delivered."""
    informer = Informer(client, PODS, namespace=namespace, compact=compact)
    delivered = 0

    def count(event: InformerEvent) -> None:
        nonlocal delivered
        delivered += 1

    informer.add_handler(count)
    start = time.perf_counter()
    elapsed = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await informer.wait_synced()
        while delivered < n:  # noqa: ASYNC110 - the handler counter is a plain int
            await anyio.sleep(0.001)
        elapsed = time.perf_counter() - start
        tg.cancel_scope.cancel()
    return elapsed, informer


def read_cost(informer: Informer, reads: int = 1000) -> float:
    """Seconds per ``cache.get`` (a private copy of one Pod)."""
    keys = informer.cache.keys()[:reads]
    start = time.perf_counter()
    for key in keys:
        informer.cache.get(key)
    return (time.perf_counter() - start) / len(keys)


async def bench_informer_fake(n: int, compact_first: bool = False) -> None:
    fake = TimedFake()
    fake.watch_list_limit_ignored_for_rv0 = False  # stream pages of 500 as a paginated list would
    for i in range(n):
        fake.put_object("api/v1", "pods", pod(i))
    raw = len(json.dumps(pod(0)))
    gc.collect()
    rss0 = rss_bytes()
    elapsed, informer = await ingest(Client(fake), n, None, compact=compact_first)
    gc.collect()
    rss1 = rss_bytes()
    assert len(informer.cache) == n
    client_s = elapsed - fake.server_seconds
    mode = "compact JSON cache" if compact_first else "dict cache"
    print(f"informer ingest (fake apiserver, {n} Pods, ~{raw} B JSON each, {mode}):")
    print(f"  end to end: {n / elapsed:,.0f} objects/s ({elapsed:.2f} s)")
    print(
        f"  client side only (minus {fake.server_seconds:.2f} s the in-process fake spent encoding pages): "
        f"{n / client_s:,.0f} objects/s ({client_s:.2f} s: decode, transform, index, notify)"
    )
    growth = rss1 - rss0
    print(f"  RSS growth per cached Pod: {growth / n / 1024:.2f} KiB (total {growth / 2**20:.1f} MiB)")
    del informer
    gc.collect()
    tracemalloc.start()
    heap0 = tracemalloc.get_traced_memory()[0]
    _, _kept = await ingest(Client(fake), n, None, compact=compact_first)
    gc.collect()
    heap1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"  Python heap retained per cached Pod (tracemalloc): {(heap1 - heap0) / n / 1024:.2f} KiB")
    print(f"  read cost: {read_cost(_kept) * 1e6:.0f} us per get (deep copy)")
    del _kept
    gc.collect()
    fake.server_seconds = 0.0
    rss0 = rss_bytes()
    elapsed, kept = await ingest(Client(fake), n, None, compact=True)
    gc.collect()
    rss1 = rss_bytes()
    client_s = elapsed - fake.server_seconds
    print(f"compact cache (objects kept as JSON bytes): {n / client_s:,.0f} objects/s client side")
    print(
        f"  RSS growth per cached Pod: {(rss1 - rss0) / n / 1024:.2f} KiB (after freed runs; see --compact)"
    )
    del kept
    gc.collect()
    tracemalloc.start()
    heap0 = tracemalloc.get_traced_memory()[0]
    _, kept = await ingest(Client(fake), n, None, compact=True)
    gc.collect()
    heap1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"  Python heap retained per cached Pod (tracemalloc): {(heap1 - heap0) / n / 1024:.2f} KiB")
    print(f"  read cost: {read_cost(kept) * 1e6:.0f} us per get (JSON decode)")


async def bench_informer_cluster(n: int, kubeconfig: str) -> None:
    client = await Client.connect(kubeconfig)
    ns = f"bench-{secrets.token_hex(3)}"
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    while True:  # ServiceAccount admission refuses pods until KCM has made the namespace's default account
        try:
            await client.get(SERVICE_ACCOUNTS, "default", ns)
            break
        except NotFound:
            await anyio.sleep(0.2)
    try:
        limiter = anyio.CapacityLimiter(32)
        start = time.perf_counter()

        async def create(i: int) -> None:
            async with limiter:
                body = pod(i, ns)
                del body["status"], body["metadata"]["managedFields"], body["metadata"]["uid"]
                del body["metadata"]["ownerReferences"]
                body["spec"]["schedulerName"] = "no-such-scheduler"  # stay Pending, untouched
                del body["spec"]["nodeName"]
                await client.create(PODS, body, ns)

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(create, i)
        print(f"created {n} Pods in {time.perf_counter() - start:.1f} s")
        elapsed, informer = await ingest(client, n, ns)
        assert len(informer.cache) == n
        print(f"informer ingest (real apiserver, {n} Pods): {n / elapsed:,.0f} objects/s ({elapsed:.2f} s)")
    finally:
        await client.delete(NAMESPACES, ns)


async def bench_queue(n: int, workers: int = 8) -> None:
    q: WorkQueue[Request] = WorkQueue("bench", controller="bench")
    keys = [Request("bench", f"k{i}") for i in range(n)]

    async def worker() -> None:
        while True:
            try:
                item = await q.get()
            except QueueShutDown:
                return
            q.done(item)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
        for key in keys:
            q.add(key)
        while len(q) or q.processing:  # noqa: ASYNC110 - draining
            await anyio.sleep(0.001)
        q.shut_down()
    elapsed = time.perf_counter() - start
    print(f"work queue: {n / elapsed:,.0f} keys/s ({n} distinct keys, {workers} workers, add+get+done)")

    dedup: WorkQueue[Request] = WorkQueue("bench-dedup", controller="bench")
    start = time.perf_counter()
    for _ in range(10):
        for key in keys:
            dedup.add(key)
    elapsed = time.perf_counter() - start
    print(f"work queue dedup adds: {10 * n / elapsed:,.0f} adds/s (10 x {n} keys -> depth {len(dedup)})")


async def bench_controller(n: int) -> None:
    done = 0

    async def reconcile(req: Request) -> None:
        nonlocal done
        done += 1

    ctrl = Controller(reconcile, for_=PODS, name="bench-controller", workers=8, trace_objects=False)
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ctrl.run)
        for i in range(n):
            ctrl.queue.add(Request("bench", f"p{i}"))
        while done < n:  # noqa: ASYNC110 - draining
            await anyio.sleep(0.001)
        tg.cancel_scope.cancel()
    elapsed = time.perf_counter() - start
    print(f"controller path (queue + metrics + span, no-op reconcile): {n / elapsed:,.0f} reconciles/s")


async def main(args: argparse.Namespace) -> None:
    n = 1000 if args.quick else args.pods
    await bench_informer_fake(n, compact_first=args.compact)
    if args.kubeconfig:
        await bench_informer_cluster(n, args.kubeconfig)
    elif args.cluster:
        from e2e.cluster import Cluster

        cluster = Cluster()
        await anyio.to_thread.run_sync(cluster.start)
        try:
            assert cluster.api is not None  # writes the admin kubeconfig
            await bench_informer_cluster(n, str(cluster.kubeconfig))
        finally:
            await anyio.to_thread.run_sync(cluster.stop)
    await bench_queue(10 * n)
    await bench_controller(n)


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compact", action="store_true", help="measure RSS with the compact cache first")
    parser.add_argument("--kubeconfig", help="also measure ingest from this cluster")
    parser.add_argument(
        "--cluster", action="store_true", help="start the local rig and measure ingest from it"
    )
    anyio.run(main, parser.parse_args())


if __name__ == "__main__":
    cli()

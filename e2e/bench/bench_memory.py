"""Benchmark P4 in process, without a cluster: the operator's RSS with 10,000 TorchJobs / 80,000 pods /
10,000 PodGroups cached.

Run: ``python -m e2e.bench.bench_memory [--jobs 10000] [--workers 8] [--json out.json]``. In a fresh
subprocess, the operator as ``pyroclast run`` builds it (manager, TorchJob reconciler with its cache
transforms, 16 workers) runs against a synthetic API server that serves real-shaped objects: the pod, PodGroup
and TorchJob the operator made on the rig (``tests/controller/torchjob/fixtures/cluster_objects.json``,
``managedFields`` included) renamed per job, pod, node and IP, as compact JSON bytes. The objects go through
the real ingest path: the LISTs the informers make, answered as the apiserver's watch cache answers them (at
resourceVersion "0" in one body whatever the limit: Services; at "" in pages of 500: TorchJobs, pods and
PodGroups, which list so for that reason), then one MODIFIED watch event per object (decoded alone, as under
churn), then every job is reconciled once (a steady job writes nothing). Printed: RSS idle / synced / steady
and peak (VmHWM), the bytes each cached object holds (deep size, shared subtrees counted once, indexes
included), PASS/FAIL vs 250 MB. Objects are generated page by page, so the synthetic server itself holds
little beyond the body it answers.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from controller.runtime.client import Client
from controller.runtime.manager import Manager
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS, SERVICES
from controller.runtime.transport import Response
from controller.torchjob.kinds import PODGROUPS, TORCHJOBS
from controller.torchjob.reconciler import TorchJobReconciler

FIXTURES = (
    Path(__file__).resolve().parents[2]
    / "tests"
    / "controller"
    / "torchjob"
    / "fixtures"
    / "cluster_objects.json"
)
LIMIT_MB = 250.0
MIB = 2**20
NAMESPACE = "bench-memory"
PODS_PER_NODE = 100


def _rename(value: Any, exact: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _rename(v, exact) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [_rename(v, exact) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return exact.get(value, value) if isinstance(value, str) else value


class Fleet:
    """JSON text of M jobs x N workers, their PodGroups and the workers' Service, made from the rig's objects
    by substituting tokens (`@job@`, `@pod@`, ...)."""

    def __init__(self, jobs: int, workers: int):
        self.jobs, self.workers = jobs, workers
        fixtures = json.loads(FIXTURES.read_text())
        job = next(j for j in fixtures["torchjobs"] if j["metadata"]["name"] == "run")
        pod = next(p for p in fixtures["pods"] if p["metadata"]["name"] == "run-worker-0")
        group = next(g for g in fixtures["podgroups"] if g["metadata"]["name"].startswith("run-"))
        self._job = self._template(job, job, group, pod)
        self._pod = self._template(pod, job, group, pod)
        self._group = self._template(group, job, group, pod)

    def _template(self, obj: JsonObject, job: JsonObject, group: JsonObject, pod: JsonObject) -> str:
        n = str(self.workers)
        obj = _rename(
            obj,
            {
                "run": "@job@",
                "2:2": f"{n}:{n}",
                "all 2 gang members started": f"all {n} gang members started",
                "pyroclast.dev/job-name=run": "pyroclast.dev/job-name=@job@",
            },
        )
        meta = obj["metadata"]
        if meta.get("labels", {}).get("pyroclast.dev/replica-index") is not None:  # the worker pod
            meta["labels"]["pyroclast.dev/replica-index"] = "@index@"
            meta["name"] = obj["spec"]["hostname"] = "@pod@"
        if "nodes" in obj.get("spec", {}):  # the job: n workers, all Running and Ready
            obj["spec"]["nodes"]["count"] = self.workers
            status = obj["status"]
            status.update(activeNodes=self.workers, desiredNodes=self.workers, readyNodes=self.workers)
            status["worldSize"] = self.workers
        if "minMember" in obj.get("spec", {}):
            obj["spec"]["minMember"] = self.workers
        text = json.dumps(obj, separators=(",", ":"))
        for old, new in (
            (job["metadata"]["uid"], "@juid@"),
            (pod["metadata"]["uid"], "@puid@"),
            (group["metadata"]["uid"], "@guid@"),
            (group["metadata"]["name"], "@group@"),
            (pod["spec"]["nodeName"], "@node@"),
            (pod["status"]["podIP"], "@ip@"),
            (job["metadata"]["namespace"], NAMESPACE),
            (f'"resourceVersion":"{obj["metadata"]["resourceVersion"]}"', '"resourceVersion":"@rv@"'),
            ("run-worker-0", "@job@-worker-0"),
        ):
            text = text.replace(old, new)
        return text

    @staticmethod
    def _fill(text: str, values: Mapping[str, str]) -> str:
        for token, value in values.items():
            text = text.replace(token, value)
        return text

    def _names(self, i: int) -> dict[str, str]:
        uid = f"{i:08x}-0000-4000-8000-{i:012x}"
        return {
            "@job@": f"tj-{i:05d}",
            "@juid@": uid,
            "@group@": f"tj-{i:05d}-{uid[:8]}",
            "@guid@": f"{i:08x}-0000-4000-9000-{i:012x}",
        }

    def job(self, i: int, rv: int) -> str:
        return self._fill(self._job, {**self._names(i), "@rv@": str(rv)})

    def group(self, i: int, rv: int) -> str:
        return self._fill(self._group, {**self._names(i), "@rv@": str(rv)})

    def pod(self, index: int, rv: int) -> str:
        i, k = divmod(index, self.workers)
        names = self._names(i)
        return self._fill(
            self._pod,
            {
                "@pod@": f"{names['@job@']}-worker-{k}",
                "@index@": str(k),
                "@puid@": f"{index:08x}-0000-4000-a000-{index:012x}",
                "@node@": f"kwok-node-{index // PODS_PER_NODE}",
                "@ip@": f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}",
                "@rv@": str(rv),
                **names,
            },
        )

    def service(self, rv: int) -> str:
        return json.dumps(
            {
                "metadata": {
                    "name": "pyroclast-workers",
                    "namespace": NAMESPACE,
                    "uid": "svc-uid",
                    "resourceVersion": str(rv),
                },
                "spec": {"clusterIP": "None", "selector": {"app.kubernetes.io/managed-by": "pyroclast"}},
            }
        )


@dataclass
class _Collection:
    count: int
    item: Any  # (index, rv) -> JSON text
    watched: bool = False
    sent: int = 0
    pages: int = 0


class _Stream:
    def __init__(self, lines: Iterator[bytes] | None):
        self._lines = lines

    @property
    def status(self) -> int:
        return 200

    async def read(self) -> bytes:
        return b""

    async def lines(self) -> AsyncIterator[bytes]:
        for n, line in enumerate(self._lines or ()):
            yield line
            if n % 500 == 0:
                await anyio.lowlevel.checkpoint()
        await anyio.sleep_forever()


@dataclass
class SyntheticApiServer:
    """A :class:`~controller.runtime.transport.Transport` serving the fleet: LISTs (one body at
    resourceVersion "0", as the watch cache; else pages of `limit`), one MODIFIED event per object on the
    first watch of each collection, then quiet watches; writes are counted and answered 200."""

    fleet: Fleet
    page_size: int = 500
    writes: list[tuple[str, str, bytes]] = field(default_factory=list[tuple[str, str, bytes]])

    def __post_init__(self) -> None:
        m, n = self.fleet.jobs, self.fleet.workers
        self.collections = {
            "torchjobs": _Collection(m, self.fleet.job),
            "pods": _Collection(m * n, self.fleet.pod),
            "podgroups": _Collection(m, self.fleet.group),
            "services": _Collection(1, lambda _, rv: self.fleet.service(rv)),
        }
        self.base_rv = 10 * (m * n + 2 * m + 1)

    @property
    def host(self) -> str:
        return "synthetic.invalid"

    @property
    def server(self) -> str:
        return "http://synthetic.invalid"

    @property
    def watch_done(self) -> bool:
        return all(c.sent == c.count for c in self.collections.values())

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> Response:
        await anyio.lowlevel.checkpoint()
        if method != "GET":
            self.writes.append((method, path, (body or b"")[:300]))
            return Response(201 if method == "POST" else 200, b"{}")
        collection = self.collections.get(path.rsplit("/", 1)[-1])
        params = params or {}
        if collection is None:  # events, or a GET of one object
            return Response(200, b'{"kind":"List","metadata":{"resourceVersion":"1"},"items":[]}')
        start = int(params.get("continue") or 0)
        # As the watch cache does: a LIST at resourceVersion "0" is one body whatever the limit.
        limit = collection.count if params.get("resourceVersion") == "0" else int(params.get("limit") or 0)
        end = min(collection.count, start + (limit or collection.count))
        collection.pages += 1
        items = ",".join(collection.item(i, 1 + i) for i in range(start, end))
        more = f',"continue":"{end}"' if end < collection.count else ""
        meta = f'{{"resourceVersion":"{self.base_rv}"{more}}}'
        return Response(
            200, f'{{"kind":"List","apiVersion":"v1","metadata":{meta},"items":[{items}]}}'.encode()
        )

    def _events(self, collection: _Collection) -> Iterator[bytes]:
        for i in range(collection.count):
            collection.sent += 1
            text = collection.item(i, self.base_rv + 1 + i)
            yield f'{{"type":"MODIFIED","object":{text}}}'.encode()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
    ) -> AsyncGenerator[_Stream]:
        await anyio.lowlevel.checkpoint()
        collection = self.collections[path.rsplit("/", 1)[-1]]
        first = not collection.watched
        collection.watched = True
        yield _Stream(self._events(collection) if first else None)

    async def aclose(self) -> None:
        """Nothing to release."""


def rss_mib() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process, MiB."""
    fields = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def deep_size(root: object, seen: set[int]) -> int:
    """Bytes of `root` and what it references (containers, pydantic models), each object counted once."""
    total, stack = 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type) or callable(obj):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())  # pyright: ignore[reportUnknownArgumentType]
            stack.extend(obj.values())  # pyright: ignore[reportUnknownArgumentType]
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)  # pyright: ignore[reportUnknownArgumentType]
        elif isinstance(obj, BaseModel):
            stack.extend(
                (obj.__dict__, obj.__pydantic_fields_set__, obj.__pydantic_extra__, obj.__pydantic_private__)
            )
    return total


async def _until(what: str, probe: Any, limit: float) -> float:
    start = time.monotonic()
    while not probe():
        if time.monotonic() - start > limit:
            raise TimeoutError(f"{what} not reached in {limit:.0f} s")
        await anyio.sleep(0.05)
    return time.monotonic() - start


async def measure(jobs: int, workers: int, limit: float) -> JsonObject:
    """The figures, measured in this process (run it in a fresh one)."""
    server = SyntheticApiServer(Fleet(jobs, workers))
    manager = Manager(Client(server), metrics_bind_address="0", sync_period=None, cache_sync_timeout=limit)
    reconciler = TorchJobReconciler(manager)
    controller = manager.add(reconciler.controller(workers=16))
    informers = [manager.informer(r) for r in (TORCHJOBS, PODS, PODGROUPS, SERVICES)]
    gc.collect()
    idle, _ = rss_mib()
    out: JsonObject = {
        "jobs": jobs,
        "workers": workers,
        "pods": jobs * workers,
        "idle_rss_mib": round(idle, 1),
    }
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        out["synced_seconds"] = round(
            await _until("caches synced", lambda: all(i.has_synced for i in informers), limit), 2
        )
        out["synced_rss_mib"] = round(rss_mib()[0], 1)
        expected = sum(c.count for c in server.collections.values())
        seen = await _until(
            "every watch event applied",
            lambda: server.watch_done and sum(i.reflector.stats.events for i in informers) >= expected,
            limit,
        )
        out["watched_seconds"] = round(seen, 2)
        out["watched_rss_mib"] = round(rss_mib()[0], 1)
        parsed = reconciler.parsed
        out["steady_seconds"] = round(
            await _until(
                "every job reconciled",
                lambda: (
                    parsed.hits + parsed.misses >= jobs
                    and not len(controller.queue)
                    and not controller.active
                ),
                limit,
            ),
            2,
        )
        rss, peak = rss_mib()
        out["rss_mib"], out["peak_rss_mib"] = round(rss, 1), round(peak, 1)
        out["writes"] = len(server.writes)
        out["first_writes"] = [f"{m} {p} {b.decode()}" for m, p, b in server.writes[:3]]
        gc.collect()
        out["rss_after_gc_mib"] = round(rss_mib()[0], 1)
        seen_ids: set[int] = set()
        sizes = {
            name: deep_size(vars(cache), seen_ids)
            for name, cache in (
                ("pod", reconciler.pods),
                ("podgroup", reconciler.podgroups),
                ("torchjob", reconciler.jobs),
            )
        }
        sizes["parsed_model"] = deep_size(vars(parsed), seen_ids)
        out["bytes_per_object"] = {
            "pod": round(sizes["pod"] / (jobs * workers)),
            "podgroup": round(sizes["podgroup"] / jobs),
            "torchjob": round(sizes["torchjob"] / jobs),
            "parsed_model": round(sizes["parsed_model"] / max(1, len(parsed))),
        }
        out["parsed_models_kept"] = len(parsed)
        out["list_pages"] = {name: c.pages for name, c in server.collections.items()}
        manager.stop()
        tg.cancel_scope.cancel()
    return out


def report(figures: JsonObject) -> str:
    """The lines to print."""
    mb = figures["rss_mib"] * MIB / 1e6
    per = figures["bytes_per_object"]
    all_in = (figures["rss_mib"] - figures["idle_rss_mib"]) * MIB / figures["pods"]
    verdict = "PASS" if mb <= LIMIT_MB else "FAIL"
    return "\n".join(
        [
            f"bench_memory: {figures['jobs']} TorchJobs / {figures['pods']} pods / "
            f"{figures['jobs']} PodGroups "
            "(real-shaped; LISTs as the watch cache answers them, pages "
            f"{figures['list_pages']}, then one MODIFIED event each, then one reconcile per job)",
            f"RSS MiB: idle {figures['idle_rss_mib']}, synced {figures['synced_rss_mib']} "
            f"({figures['synced_seconds']} s), after the watch events {figures['watched_rss_mib']}, "
            f"steady {figures['rss_mib']} ({figures['steady_seconds']} s); peak {figures['peak_rss_mib']}; "
            f"after gc.collect() {figures['rss_after_gc_mib']}",
            "bytes per cached object (deep size, indexes included): "
            f"pod {per['pod']}, PodGroup {per['podgroup']}, "
            f"TorchJob {per['torchjob']} (compact JSON); parsed model {per['parsed_model']} x "
            f"{figures['parsed_models_kept']} kept",
            f"RSS above idle per pod, all-in: {all_in:.0f} B; API writes during the run: {figures['writes']}",
            f"P4 (in process): RSS {mb:.1f} MB with {figures['jobs']} jobs / {figures['pods']} pods cached "
            f"<= {LIMIT_MB:.0f} MB: {verdict}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0, help="per stage, seconds")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the measuring process: figures as one JSON line
        print(json.dumps(anyio.run(measure, args.jobs, args.workers, args.timeout)))
        return
    argv = [sys.executable, "-m", "e2e.bench.bench_memory", "--child", "--jobs", str(args.jobs)]
    argv += ["--workers", str(args.workers), "--timeout", str(args.timeout)]
    done = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
    figures: JsonObject = json.loads(done.stdout.strip().splitlines()[-1])
    print(report(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))
    if figures["rss_mib"] * MIB / 1e6 > LIMIT_MB:
        sys.exit(1)


if __name__ == "__main__":
    main()

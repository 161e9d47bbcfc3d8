"""The restart-storm scenario: jobs created while the operator is SIGKILLed and restarted over and over.

Shared by ``bench_restarts`` (100 jobs, 50 restarts) and the cluster test (10 jobs, 5 restarts). Pod creates
are counted from the apiserver's ``apiserver_request_total`` (successful creates and AlreadyExists
conflicts) and every job's pods are checked: exactly N, named ``<job>-worker-<i>``, attempt 0, no restart.
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from controller.runtime.objects import JsonObject
from e2e.bench.harness import job, start_operator, stop_operator
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
ATTEMPT_LABEL = "pyroclast.dev/attempt"


def pod_creates(cluster: Cluster) -> Counter[str]:
    """Pod creates the apiserver has answered so far, by response code (cluster-wide, since it started)."""
    out: Counter[str] = Counter()
    for line in cluster.api.request("GET", "/metrics").text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if (
            labels.get("verb") == "POST"
            and labels.get("resource") == "pods"
            and not labels.get("subresource")
            and not labels.get("dry_run")  # a dry run stores nothing: it cannot make a duplicate
        ):
            out[labels.get("code", "")] += int(float(match["value"]))
    return out


@dataclass
class Outcome:
    """What a storm did and left behind."""

    jobs: int
    workers: int
    restarts: int = 0
    uptimes: list[float] = field(default_factory=list[float])
    creates_ok: int = 0
    conflicts: int = 0
    pods: int = 0
    problems: list[str] = field(default_factory=list[str])
    """One line per job that does not have exactly its N attempt-0 pods, or shows a restart."""
    settle_seconds: float = 0.0

    @property
    def duplicates(self) -> int:
        """Successful pod creates beyond one per pod that exists (a pod created twice, or one too many)."""
        return self.creates_ok - self.jobs * self.workers


def storm(
    cluster: Cluster,
    pool: NodePool,
    namespace: str,
    *,
    jobs: int,
    restarts: int,
    workers: int = 2,
    uptime: tuple[float, float] = (0.3, 3.0),
    seed: int = 5,
    settle_timeout: float = 300.0,
) -> Outcome:
    """Create `jobs` while the operator is SIGKILLed `restarts` times (each life `uptime` seconds, random)."""
    rng = random.Random(seed)
    out = Outcome(jobs=jobs, workers=workers)
    log_path = cluster.workdir / "logs" / f"storm-{namespace}.log"
    before = pod_creates(cluster)
    lives = [rng.uniform(*uptime) for _ in range(restarts)]
    pace = sum(lives) / max(jobs, 1)  # spread the creates over the whole storm
    creator = threading.Thread(target=_create_jobs, args=(cluster, pool, namespace, jobs, workers, pace))
    proc = start_operator(cluster.kubeconfig, log_path)
    creator.start()
    try:
        for life in lives:
            time.sleep(life)
            stop_operator(proc, signal.SIGKILL)
            out.restarts += 1
            out.uptimes.append(life)
            proc = start_operator(cluster.kubeconfig, log_path)
        creator.join()
        t0 = time.monotonic()
        _settle(cluster, namespace, jobs, workers, settle_timeout)
        out.settle_seconds = time.monotonic() - t0
        time.sleep(2.0)  # a late duplicate would show up now
        _check(cluster, namespace, jobs, workers, out)
    finally:
        stop_operator(proc)
        creator.join()
    after = pod_creates(cluster)
    out.creates_ok = after["201"] - before["201"]
    out.conflicts = after["409"] - before["409"]
    return out


def job_name(i: int) -> str:
    """Fixed-width names: no job's name is a prefix of another's."""
    return f"r-{i:03d}"


def _create_jobs(
    cluster: Cluster, pool: NodePool, namespace: str, jobs: int, workers: int, pace: float
) -> None:
    path = f"/apis/pyroclast.dev/v1alpha1/namespaces/{namespace}/torchjobs"
    for i in range(jobs):
        cluster.api.create(path, job(job_name(i), pool, workers=workers, succeed_after=None))
        time.sleep(pace)


def _pods(cluster: Cluster, namespace: str) -> list[JsonObject]:
    return list((cluster.api.get(f"/api/v1/namespaces/{namespace}/pods") or {}).get("items") or [])


def _settle(cluster: Cluster, namespace: str, jobs: int, workers: int, timeout: float) -> None:
    """Wait until every job is Running with its pods (or the timeout: the check then reports)."""
    path = f"/apis/pyroclast.dev/v1alpha1/namespaces/{namespace}/torchjobs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = (cluster.api.get(path) or {}).get("items") or []
        running = sum(1 for j in items if (j.get("status") or {}).get("phase") == "Running")
        if running == jobs and len(_pods(cluster, namespace)) >= jobs * workers:
            return
        time.sleep(1.0)


def _check(cluster: Cluster, namespace: str, jobs: int, workers: int, out: Outcome) -> None:
    pods = _pods(cluster, namespace)
    out.pods = len(pods)
    by_job: dict[str, list[JsonObject]] = {}
    for p in pods:
        owner = next(iter(p["metadata"].get("ownerReferences") or []), {}).get("name", "?")
        by_job.setdefault(owner, []).append(p)
    path = f"/apis/pyroclast.dev/v1alpha1/namespaces/{namespace}/torchjobs"
    statuses = {j["metadata"]["name"]: j.get("status") or {} for j in (cluster.api.get(path) or {})["items"]}
    for i in range(jobs):
        name = job_name(i)
        mine = by_job.pop(name, [])
        names = sorted(p["metadata"]["name"] for p in mine)
        attempts = {p["metadata"].get("labels", {}).get(ATTEMPT_LABEL) for p in mine}
        status = statuses.get(name, {})
        restarts = status.get("failureRestarts", 0) + status.get("preemptionRestarts", 0)
        if names != [f"{name}-worker-{k}" for k in range(workers)] or attempts != {"0"} or restarts:
            out.problems.append(
                f"{name}: pods {names}, attempts {sorted(a or '' for a in attempts)}, restarts {restarts}, "
                f"phase {status.get('phase')}"
            )
    for owner, extra in by_job.items():
        out.problems.append(f"pods owned by unknown {owner}: {len(extra)}")


def log_of(cluster: Cluster, namespace: str) -> Path:
    """The storm's operator log (every life appended)."""
    return cluster.workdir / "logs" / f"storm-{namespace}.log"

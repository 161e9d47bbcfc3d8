"""The TorchJob operator, in process, on the local cluster (Volcano + kwok).

Pod outcomes are driven by kwok stages through pod annotations, so these tests exercise the real scheduler,
garbage collector and apiserver."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from controller.runtime.client import Client
from controller.runtime.errors import NotFound
from controller.runtime.objects import JsonObject
from controller.runtime.resource import EVENTS, PODS, SERVICES
from controller.torchjob.kinds import PODGROUPS, TORCHJOBS
from controller.torchjob.reconciler import STATUS_BATCH
from controller.torchjob.service import WORKERS_SERVICE
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.torchjobs import condition, names, operator, status_of, torchjob, wait_for, wait_phase

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
TRACE = "pyroclast.dev/trace-context"


async def test_happy_path_runs_then_succeeds_and_frees_the_podgroup(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        body = torchjob("happy", nodes, annotations={"pyroclast.dev/test-succeed-after": "4s"})
        await client.create(TORCHJOBS, body, namespace)
        running = await wait_phase(client, namespace, "happy", "Running")
        assert running["readyNodes"] == 2
        done = await wait_phase(client, namespace, "happy", "Succeeded")
        assert "completionTime" in done
        assert condition(done, "Running") is not None  # it really ran before it finished
        await wait_for("PodGroup deleted", lambda: _empty(client, PODGROUPS, namespace))
        assert len(await names(client, PODS, namespace)) == 2  # finished pods kept (cleanPodPolicy Running)
        wanted = {"WaitingForScheduler", "AllWorkersRunning", "AllWorkersSucceeded"}

        async def job_events() -> set[str] | None:  # recorded in the background, just after the status
            events = (await client.list(EVENTS, namespace)).items
            reasons = {e["reason"] for e in events if e["involvedObject"].get("kind") == "TorchJob"}
            return reasons if wanted <= reasons else None

        assert wanted <= await wait_for(f"Events {sorted(wanted)} on the job", job_events, within=10)


async def _empty(client: Client, resource: Any, namespace: str) -> bool:
    return not (await client.list(resource, namespace)).items


async def test_gang_that_cannot_fit_stays_queued_with_the_reason(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        # Three 3-CPU workers on two 4-CPU nodes: admitted (minResources within overcommit), never placeable.
        await client.create(TORCHJOBS, torchjob("big", nodes, count=3, cpu="3"), namespace)

        async def reason() -> JsonObject | None:
            status = await status_of(client, namespace, "big")
            queued = condition(status, "Queued")
            if status.get("phase") == "Queued" and queued and "unschedulable" in queued["message"].lower():
                return status
            return None

        status = await wait_for("Queued with the scheduler's reason", reason, 90)
        assert status["phase"] == "Queued"
        pods = (await client.list(PODS, namespace)).items
        assert len(pods) == 3
        assert all(not p["spec"].get("nodeName") for p in pods), "no gang member may be bound"

        # The scheduler's reason is in an Event too (kubectl describe), not only in the condition.
        async def queued_events() -> list[str] | None:
            events = (await client.list(EVENTS, namespace)).items
            said = [
                e["message"]
                for e in events
                if e["involvedObject"].get("name") == "big" and e["reason"] == "WaitingForScheduler"
            ]
            return said if any("unschedulable" in m.lower() for m in said) else None

        await wait_for("a WaitingForScheduler Event with the scheduler's reason", queued_events, 30)


async def test_deleted_job_leaves_nothing_behind(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("gone", nodes), namespace)
        await wait_phase(client, namespace, "gone", "Running")
        await client.delete(TORCHJOBS, "gone", namespace, propagation_policy="Foreground")
        for resource in (PODS, PODGROUPS):
            await wait_for(f"{resource} gone", lambda r=resource: _empty(client, r, namespace), 60)
        # Only the namespace's shared worker Service stays, owned by no job.
        assert await names(client, SERVICES, namespace) == [WORKERS_SERVICE]
        await wait_for("job gone", lambda: _gone(client, namespace, "gone"), 60)
        with pytest.raises(NotFound):
            await client.get(TORCHJOBS, "gone", namespace)


async def _gone(client: Client, namespace: str, name: str) -> bool:
    try:
        await client.get(TORCHJOBS, name, namespace)
    except NotFound:
        return True
    return False


async def test_permanent_exit_code_fails_at_once(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        annotations = {"pyroclast.dev/test-fail-after": "2s", "pyroclast.dev/test-exit-code": "3"}
        body = torchjob("perm", nodes, annotations=annotations, failurePolicy={"permanentExitCodes": [3]})
        await client.create(TORCHJOBS, body, namespace)
        status = await wait_phase(client, namespace, "perm", "Failed")
        failed = condition(status, "Failed")
        assert failed is not None
        assert failed["reason"] == "PermanentExitCode"
        assert status.get("failureRestarts", 0) == 0
        await wait_for("PodGroup deleted", lambda: _empty(client, PODGROUPS, namespace))


async def test_retryable_failures_restart_the_gang_until_the_budget_is_spent(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        annotations = {"pyroclast.dev/test-fail-after": "2s", "pyroclast.dev/test-exit-code": "1"}
        body = torchjob("flaky", nodes, annotations=annotations, failurePolicy={"maxFailureRestarts": 1})
        await client.create(TORCHJOBS, body, namespace)
        status = await wait_phase(client, namespace, "flaky", "Failed", 90)
        failed = condition(status, "Failed")
        assert failed is not None
        assert failed["reason"] == "FailureBudgetExhausted"
        assert status["failureRestarts"] == 1
        assert status.get("preemptionRestarts", 0) == 0
        pods = (await client.list(PODS, namespace)).items
        assert {p["metadata"]["labels"]["pyroclast.dev/attempt"] for p in pods} == {"1"}


async def test_operator_restarted_mid_creation_creates_no_duplicates(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="8")
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("again", nodes, count=4), namespace)
        await wait_for("first pod", lambda: _any(client, PODS, namespace), 30)
    # The first operator is gone, possibly half-way through; a new one finishes the job's creation.
    async with operator(cluster) as client:
        status = await wait_phase(client, namespace, "again", "Running")
        pods = (await client.list(PODS, namespace)).items
        assert sorted(p["metadata"]["name"] for p in pods) == [f"again-worker-{i}" for i in range(4)]
        assert {p["metadata"]["labels"]["pyroclast.dev/attempt"] for p in pods} == {"0"}
        assert len((await client.list(PODGROUPS, namespace)).items) == 1
        assert status.get("failureRestarts", 0) == 0
        assert status.get("preemptionRestarts", 0) == 0


async def _any(client: Client, resource: Any, namespace: str) -> bool:
    return bool((await client.list(resource, namespace)).items)


async def test_suspend_frees_everything_and_resume_runs_again(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("nap", nodes), namespace)
        await wait_phase(client, namespace, "nap", "Running")
        await client.patch(TORCHJOBS, "nap", {"spec": {"runPolicy": {"suspend": True}}}, namespace)
        await wait_phase(client, namespace, "nap", "Suspended")
        await wait_for("pods gone", lambda: _empty(client, PODS, namespace))
        await wait_for("PodGroup gone", lambda: _empty(client, PODGROUPS, namespace))
        await client.patch(TORCHJOBS, "nap", {"spec": {"runPolicy": {"suspend": False}}}, namespace)
        status = await wait_phase(client, namespace, "nap", "Running")
        assert status["readyNodes"] == 2


async def test_active_deadline_fails_the_job(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        body = torchjob("late", nodes, runPolicy={"activeDeadlineSeconds": 5})
        await client.create(TORCHJOBS, body, namespace)
        status = await wait_phase(client, namespace, "late", "Failed", 60)
        failed = condition(status, "Failed")
        assert failed is not None
        assert failed["reason"] == "DeadlineExceeded"
        await wait_for("running pods deleted", lambda: _empty(client, PODS, namespace))
        await wait_for("PodGroup deleted", lambda: _empty(client, PODGROUPS, namespace))


async def test_ttl_deletes_the_finished_job(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        annotations = {"pyroclast.dev/test-succeed-after": "1s"}
        body = torchjob("brief", nodes, annotations=annotations, runPolicy={"ttlSecondsAfterFinished": 3})
        await client.create(TORCHJOBS, body, namespace)
        await wait_phase(client, namespace, "brief", "Succeeded")
        await wait_for("job deleted by TTL", lambda: _gone(client, namespace, "brief"), 60)


async def test_evictions_spend_the_preemption_budget_never_the_failure_budget(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        # kwok evicts every attempt's pods (phase Failed, reason Evicted, DisruptionTarget, exit code 137).
        body = torchjob(
            "evicted",
            nodes,
            annotations={"pyroclast.dev/test-evict": "true"},
            failurePolicy={"maxFailureRestarts": 0, "maxPreemptionRestarts": 2},
        )
        await client.create(TORCHJOBS, body, namespace)
        status = await wait_phase(client, namespace, "evicted", "Failed", 90)
        failed = condition(status, "Failed")
        assert failed is not None
        assert failed["reason"] == "PreemptionBudgetExhausted"
        assert status["preemptionRestarts"] == 2
        assert status.get("failureRestarts", 0) == 0


@dataclass(frozen=True, slots=True)
class _Write:
    at: float
    method: str
    path: str
    body: bytes
    dry_run: bool = False

    @property
    def kind(self) -> str:
        """``POST pods``, ``PATCH torchjobs/status``, ``DELETE podgroups``, ``POST pods (dry run)``, ..."""
        parts = self.path.split("/")
        kind = f"{self.method} {parts[0]}" + ("/status" if parts[-1] == "status" else "")
        return f"{kind} (dry run)" if self.dry_run else kind

    @property
    def phase(self) -> str | None:
        """The phase a status write sets, if any."""
        return (
            (json.loads(self.body).get("status") or {}).get("phase")
            if self.kind.endswith("/status")
            else None
        )

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.body[:160].decode(errors='replace')}"


def _budget(writes: list[_Write], workers: int, *, first_in_namespace: bool) -> list[str]:
    """The happy path's writes, each justified: PodGroup, N pods, Running, Succeeded, PodGroup delete (N + 4);
    the namespace's first job also creates the shared Service; a Queued status is one more write only when the
    gang really waited longer than the status batch window (else Queued rides along with Running). Besides
    them, one request that persists nothing: the dry run of a new job's first worker."""
    expected = Counter(
        {"POST podgroups": 1, "POST pods": workers, "PATCH torchjobs/status": 2, "DELETE podgroups": 1}
    )
    expected["POST pods (dry run)"] = 1
    justified = [f"N + 4 = {workers + 4}", "and a dry run of the first worker (persists nothing)"]
    if first_in_namespace:
        expected["POST services"] = 1
        justified.append("+1 the namespace's shared Service")
    phases = [w.phase for w in writes if w.kind == "PATCH torchjobs/status"]
    if "Queued" in phases:
        created = next(w.at for w in writes if w.kind == "POST podgroups")
        queued = next(w.at for w in writes if w.phase == "Queued")
        assert queued - created >= STATUS_BATCH, f"Queued written {queued - created:.2f} s after the PodGroup"
        expected["PATCH torchjobs/status"] += 1
        justified.append(f"+1 Queued: the gang waited {queued - created:.1f} s > {STATUS_BATCH:g} s")
    assert [p for p in phases if p] == [*(["Queued"] if "Queued" in phases else []), "Running", "Succeeded"]
    assert Counter(w.kind for w in writes) == expected, [str(w) for w in writes]
    return justified


async def test_happy_path_api_writes_per_job(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = 4
    nodes(2, cpu="8")
    writes: list[_Write] = []
    call = Client._call  # pyright: ignore[reportPrivateUsage]

    async def counting(
        self: Client, verb: str, method: str, resource: Any, path: str, **kw: Any
    ) -> JsonObject:
        if method in WRITE_METHODS and namespace in path:
            body: bytes = kw.get("body") or b""
            dry_run = "dryRun" in (kw.get("params") or {})
            writes.append(_Write(time.monotonic(), method, path.split(namespace + "/", 1)[-1], body, dry_run))
        return await call(self, verb, method, resource, path, **kw)

    monkeypatch.setattr(Client, "_call", counting)
    per_job: list[list[_Write]] = []
    async with operator(cluster) as client:
        for name in ("first", "second"):  # the first job in a namespace also creates its shared Service
            before = len(writes)
            body = torchjob(
                name, nodes, count=workers, annotations={"pyroclast.dev/test-succeed-after": "3s"}
            )
            await client.create(TORCHJOBS, body, namespace)
            await wait_phase(client, namespace, name, "Succeeded")
            await wait_for("PodGroup deleted", lambda: _empty(client, PODGROUPS, namespace))
            await anyio.sleep(2.0)  # let any trailing write land
            # minus the test's create, Events, and the runtime's trace-context annotation (recording tracer)
            per_job.append(
                [w for w in writes[before + 1 :] if not w.path.startswith("events") and TRACE not in str(w)]
            )
    for index, (name, mine) in enumerate(zip(("first", "second"), per_job, strict=True)):
        print(f"\nAPI writes for {workers}-worker job {name!r}, happy path: {len(mine)}")
        print("\n".join(map(str, mine)))
        print("budget:", ", ".join(_budget(mine, workers, first_in_namespace=index == 0)))
    for mine in per_job:  # the dry run comes before anything is created
        assert mine[0].kind == "POST pods (dry run)", [str(w) for w in mine[:3]]
    assert [w.kind for w in per_job[0] if not w.dry_run][:2] == ["POST podgroups", "POST services"]


def _start_cli_operator(cluster: Cluster) -> subprocess.Popen[str]:
    """`pyroclast run` as its own process, as `make run` and a Deployment start it."""
    argv = [
        sys.executable, "-m", "pyroclast.cli", "run", "--kubeconfig", str(cluster.kubeconfig),
        "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then the output (killed if it ignores the signal for 40 s)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=40)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


async def test_pyroclast_run_operates_and_stops_cleanly_on_sigterm(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    proc = _start_cli_operator(cluster)
    output = ""
    try:
        client = await Client.connect(cluster.kubeconfig)
        await client.create(TORCHJOBS, torchjob("cli", nodes), namespace)
        status = await wait_phase(client, namespace, "cli", "Running")
        assert status["readyNodes"] == 2
    finally:
        output = _stop(proc)
    assert proc.returncode == 0, output[-4000:]

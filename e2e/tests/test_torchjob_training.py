"""Real training under the operator: TorchJob workers are torchrun processes on process nodes.

Every worker pod runs `torchrun -m workloads.train` (CPU, gloo, a tiny deterministic MLP) in its own network
namespace on the rig's bridge; peers find each other through cluster DNS; checkpoints go to shared storage
(an `nfs` volume, a rig directory shared by all process nodes). Volcano schedules and preempts, the operator
restarts, shrinks and resumes, and the figures the project claims are printed: SIGTERM-to-exit under the
real grace path, steps lost per preemption and the step training resumed from.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import anyio
import pytest

from controller.runtime.client import Client
from controller.runtime.metrics import REGISTRY
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS
from controller.torchjob.kinds import TORCHJOBS
from controller.torchjob.progress_endpoint import Address
from e2e.cluster import Cluster
from e2e.cluster.process_nodes import ProcessNodePool
from e2e.conftest import CliRun
from e2e.torchjobs import condition, operator_reconciler, status_of, wait_for, wait_phase
from e2e.training import RENDEZVOUS, TOTAL_STEPS, train_args, training_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def events(text: str, kind: str | None = None) -> list[JsonObject]:
    """The workload's JSON progress lines in a log."""
    out: list[JsonObject] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and (kind is None or event.get("event") == kind):
            out.append(event)
    return out


def pod_logs(cluster: Cluster, namespace: str, pod: str) -> str:
    """`kubectl logs` of the trainer container ("" when not available)."""
    return cluster.kubectl("logs", "-n", namespace, pod, "-c", "trainer", check=False).stdout


def job_events(cluster: Cluster, namespace: str, pods: list[str], kind: str) -> list[JsonObject]:
    """`kind` events of all these pods in time order (only global rank 0 reports, on whichever pod it is)."""
    found = [e for pod in pods for e in events(pod_logs(cluster, namespace, pod), kind)]
    return sorted(found, key=lambda e: e.get("ts", 0))


def workers(job: str, count: int) -> list[str]:
    """Worker pod names of a job."""
    return [f"{job}-worker-{i}" for i in range(count)]


def reports(result: str) -> float:
    """The operator's live progress report counter."""
    return REGISTRY.get_sample_value("pyroclast_progress_reports_total", {"result": result}) or 0.0


def progress_address(cluster: Cluster) -> tuple[Address, str]:
    """Where the operator's progress endpoint listens for pods (the bridge's host address) and its URL."""
    host = cluster.ensure_pod_network().host_address
    with socket.socket() as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    return Address(host, port), f"http://{host}:{port}"


async def trained(
    what: str, cluster: Cluster, namespace: str, pods: list[str], *, steps: int, size: int | None = None
) -> None:
    """Wait until rank 0 (on one of `pods`) has logged `steps` steps (at world size `size`, if given): the
    workers are past their rendezvous and process-group start, where a lost peer would only be noticed at
    the init timeout."""

    def done() -> bool:
        for name in pods:
            logged = events(pod_logs(cluster, namespace, name), "progress")
            at = [e for e in logged if size is None or e["world_size"] == size]
            if at and at[-1]["step"] >= steps:
                return True
        return False

    await wait_for(what, lambda: anyio.to_thread.run_sync(done), 120)


async def worker_pods(client: Client, namespace: str, job: str) -> list[JsonObject]:
    """The job's worker pods."""
    pods = (await client.list(PODS, namespace)).items
    return [p for p in pods if p["metadata"]["name"].startswith(f"{job}-worker-")]


async def test_fixed_job_trains_to_success_with_real_logs_progress_and_checkpoint(
    cluster: Cluster, crd: str, namespace: str, process_nodes: ProcessNodePool, cli: CliRun
) -> None:
    process_nodes(2, cpu="2", memory="8Gi")
    bind, url = progress_address(cluster)
    accepted = reports("accepted")
    followed: list[tuple[int, str, str]] = []
    async with operator_reconciler(cluster, progress_bind=bind, progress_url=url) as reconciler:
        client = reconciler.client
        t0 = time.monotonic()
        await client.create(TORCHJOBS, training_job("fixed", process_nodes), namespace)
        await wait_phase(client, namespace, "fixed", "Running", 60)

        async def follow() -> None:  # `pyroclast job logs -f` until the workers end
            argv = ("job", "logs", "fixed", "-n", namespace, "-f")
            followed.append(await anyio.to_thread.run_sync(cli, *argv))

        async def live() -> JsonObject | None:
            status = await status_of(client, namespace, "fixed")
            progress = status.get("progress") or {}
            return status if status.get("phase") == "Running" and progress.get("step", 0) >= 10 else None

        done: JsonObject = {}
        elapsed = 0.0
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            running = await wait_for("live status.progress while Running", live, 120)
            assert reports("accepted") > accepted, "no live progress POST was accepted"
            assert running["progress"]["totalSteps"] == TOTAL_STEPS
            done = await wait_phase(client, namespace, "fixed", "Succeeded", 180)
            elapsed = time.monotonic() - t0
        print(f"\n2 nodes x 2 processes, {TOTAL_STEPS} steps: apply -> Succeeded in {elapsed:.1f} s")
        assert done["progress"]["step"] == TOTAL_STEPS
        assert done["lastCheckpoint"]["step"] == TOTAL_STEPS
        assert done["lastCheckpoint"]["path"].endswith(f"step-{TOTAL_STEPS:012d}")
        assert done.get("failureRestarts", 0) == 0
        # The trainers ran with the operator's memory-backed /dev/shm (the stand-in kubelet backs a Memory
        # emptyDir with the host's tmpfs); without a memory limit it has no size limit.
        for pod in await worker_pods(client, namespace, "fixed"):
            shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "pyroclast-shm")
            assert shm["emptyDir"] == {"medium": "Memory"}
            trainer = pod["spec"]["containers"][0]
            assert {"name": "pyroclast-shm", "mountPath": "/dev/shm"} in trainer["volumeMounts"]

        progress = job_events(cluster, namespace, workers("fixed", 2), "progress")
        assert [e["step"] for e in progress] == list(range(1, TOTAL_STEPS + 1)), progress[-3:]
        assert {e["world_size"] for e in progress} == {4}
        assert done["progress"]["loss"] == progress[-1]["loss"]

        ((code, out, err),) = followed
        assert code == 0, err
        plain = "\n".join(ln.split("] ", 1)[-1] for ln in out.splitlines())
        streamed = [e["step"] for e in events(plain, "progress")]
        assert TOTAL_STEPS in streamed, out[-2000:]
        assert "[worker-1]" in out


async def test_preempted_job_drains_resumes_and_loses_no_step(
    cluster: Cluster,
    crd: str,
    namespace: str,
    process_nodes: ProcessNodePool,
    priorities: tuple[str, str],
) -> None:
    low, high = priorities
    victim_pool = process_nodes
    process_nodes(2, cpu="2", memory="8Gi")  # room for one 2-node gang of 1500m workers
    reference_pool = ProcessNodePool(cluster)
    reference_pool(2, cpu="2", memory="8Gi")
    args = train_args(total_steps=60, step_sleep=0.15)
    # World size 2 (one process per node): an all-reduce of two addends is exact in any order, so the resumed
    # trajectory must equal the uninterrupted one bit for bit. (At 4 ranks the reduction order of a bucket
    # may differ after a restart, which changes rounding only.)
    try:
        async with operator_reconciler(cluster) as reconciler:
            client = reconciler.client
            await client.create(
                TORCHJOBS, training_job("victim", victim_pool, nproc=1, args=args, priority=low), namespace
            )
            await client.create(
                TORCHJOBS, training_job("reference", reference_pool, nproc=1, args=args), namespace
            )
            await wait_phase(client, namespace, "victim", "Running", 90)

            await trained("victim at step 15", cluster, namespace, workers("victim", 2), steps=15)
            before = {p["metadata"]["uid"] for p in await worker_pods(client, namespace, "victim")}
            urgent = training_job("urgent", victim_pool, nproc=1, args=train_args(5, 0.0), priority=high)
            t_preempt = time.monotonic()
            await client.create(TORCHJOBS, urgent, namespace)

            async def victims_gone() -> bool:
                uids = {p["metadata"]["uid"] for p in await worker_pods(client, namespace, "victim")}
                return not (uids & before)

            await wait_for("victim pods drained and gone", victims_gone, 150)
            drain_s = time.monotonic() - t_preempt
            waiting = await wait_phase(client, namespace, "victim", "Preempted", 60)
            assert waiting.get("failureRestarts", 0) == 0
            assert waiting["preemptionRestarts"] == 1
            drained_step = waiting["lastCheckpoint"]["step"]
            assert drained_step >= 15

            await wait_phase(client, namespace, "urgent", "Succeeded", 150)
            done = await wait_phase(client, namespace, "victim", "Succeeded", 240)
            reference = await wait_phase(client, namespace, "reference", "Succeeded", 60)

            (resume,) = job_events(cluster, namespace, workers("victim", 2), "resume")
            steps = [e["step"] for e in job_events(cluster, namespace, workers("victim", 2), "progress")]
            lost = drained_step - resume["from_step"]
            print(
                f"\npreemption: victims gone {drain_s:.1f} s after the preemptor was created (SIGTERM, "
                f"drain checkpoint, exit); drained at step {drained_step}, resumed from step "
                f"{resume['from_step']}, steps lost {lost}"
            )
            assert lost == 0
            assert steps[0] == resume["from_step"] + 1, "a step was repeated or skipped"
            assert steps == list(range(steps[0], 61))
            assert done.get("failureRestarts", 0) == 0
            assert done["preemptionRestarts"] == 1
            assert done["progress"]["loss"] == reference["progress"]["loss"], "final loss differs bitwise"
    finally:
        reference_pool.delete_all()


def _worker_process_pids(cluster: Cluster, pod: JsonObject) -> list[int]:
    """Host pids of the trainer processes (torchrun's children) in the pod's network namespace."""
    netns = cluster.ensure_pod_network().netns_name(pod["metadata"]["uid"])
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=True).stdout
    pids: list[int] = []
    for pid in (int(p) for p in out.split()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"workloads.train" in b" ".join(argv) and not any(b"torchrun" in a for a in argv):
            pids.append(pid)
    return pids


async def test_sigkilled_worker_restarts_the_gang_from_the_newest_checkpoint(
    cluster: Cluster, crd: str, namespace: str, process_nodes: ProcessNodePool
) -> None:
    process_nodes(2, cpu="2", memory="8Gi")
    args = train_args(total_steps=50, step_sleep=0.1)
    async with operator_reconciler(cluster) as reconciler:
        client = reconciler.client
        # maxRestarts 0: torchrun does not restart its workers in place; the operator restarts the whole gang.
        job = training_job("killed", process_nodes, args=args, rendezvous={**RENDEZVOUS, "maxRestarts": 0})
        await client.create(TORCHJOBS, job, namespace)
        await wait_phase(client, namespace, "killed", "Running", 90)

        def saved_steps() -> list[int]:
            return sorted(
                e["step"] for e in job_events(cluster, namespace, workers("killed", 2), "checkpoint")
            )

        async def checkpointed() -> JsonObject | None:
            saved = await anyio.to_thread.run_sync(saved_steps)
            return {"step": saved[-1]} if saved and saved[-1] >= 10 else None

        await wait_for("a checkpoint at step 10", checkpointed, 120)
        (pod,) = [
            p for p in await worker_pods(client, namespace, "killed") if p["metadata"]["name"].endswith("-1")
        ]
        before_kill = max(await anyio.to_thread.run_sync(saved_steps))
        pids = _worker_process_pids(cluster, pod)
        assert pids, "no trainer process found in the pod's namespace"
        os.kill(pids[0], signal.SIGKILL)

        async def restarted() -> JsonObject | None:
            status = await status_of(client, namespace, "killed")
            return status if status.get("failureRestarts") == 1 else None

        await wait_for("a whole-gang restart counted as a failure", restarted, 120)
        done = await wait_phase(client, namespace, "killed", "Succeeded", 240)
        assert done["failureRestarts"] == 1
        assert done.get("preemptionRestarts", 0) == 0
        (resume,) = job_events(cluster, namespace, workers("killed", 2), "resume")
        steps = [e["step"] for e in job_events(cluster, namespace, workers("killed", 2), "progress")]
        print(
            f"\nSIGKILLed worker: checkpoint {before_kill} before the kill, "
            f"resumed from {resume['from_step']}"
        )
        # The surviving pod drains on its SIGTERM, so the newest checkpoint may be later than the one before.
        assert resume["from_step"] >= before_kill, "did not resume from the newest checkpoint"
        assert steps == list(range(resume["from_step"] + 1, 51))


async def test_permanent_exit_code_fails_the_job_at_once_with_the_workers_message(
    cluster: Cluster, crd: str, namespace: str, process_nodes: ProcessNodePool
) -> None:
    process_nodes(2, cpu="2", memory="8Gi")
    messages: list[str] = []
    async with operator_reconciler(cluster) as reconciler:
        client = reconciler.client
        job = training_job(
            "broken",
            process_nodes,
            args=[*train_args(), "--global-batch", "6"],  # 6 samples cannot be split over 4 ranks
            failurePolicy={"permanentExitCodes": [1]},
            rendezvous={**RENDEZVOUS, "maxRestarts": 0},  # torchrun exits at the first failure
        )
        await client.create(TORCHJOBS, job, namespace)

        async def failed() -> JsonObject | None:
            for pod in await worker_pods(client, namespace, "broken"):
                for cs in pod.get("status", {}).get("containerStatuses") or []:
                    message = (cs.get("state", {}).get("terminated") or {}).get("message")
                    if message:
                        messages.append(message)
            status = await status_of(client, namespace, "broken")
            return status if status.get("phase") == "Failed" else None

        status = await wait_for("the job Failed", failed, 150)
        assert status.get("failureRestarts", 0) == 0, "a permanent exit code must not restart the gang"
        cond = condition(status, "Failed")
        assert cond is not None
        assert "exit code 1 (permanent)" in cond["message"]
        assert "global batch 6 is not divisible by world size 4" in cond["message"], "the worker's own words"
        # The worker's own report reached the pod status through /dev/termination-log.
        reports_seen = [json.loads(m) for m in messages if m.lstrip().startswith("{")]
        assert any(
            "global batch 6 is not divisible by world size 4" in (r.get("error") or "") for r in reports_seen
        ), messages


def _steps_once(progress: list[JsonObject]) -> list[int]:
    """The steps of time-ordered progress events, asserting none was trained twice."""
    steps = [e["step"] for e in progress]
    assert len(steps) == len(set(steps)), f"a step was trained twice: {steps}"
    assert steps == sorted(steps)
    return steps


async def test_elastic_job_shrinks_to_survivors_under_preemption_and_grows_back(
    cluster: Cluster,
    crd: str,
    namespace: str,
    process_nodes: ProcessNodePool,
    priorities: tuple[str, str],
) -> None:
    low, high = priorities
    process_nodes(4, cpu="2", memory="8Gi")  # one 1500m worker per node, room beside it for the store
    total = 120
    args = train_args(total_steps=total, step_sleep=0.15)
    async with operator_reconciler(cluster) as reconciler:
        client = reconciler.client
        elastic = training_job(
            "elastic",
            process_nodes,
            count=4,
            nproc=1,
            args=args,
            priority=low,
            nodes={"count": 4, "min": 2, "max": 4},
        )
        await client.create(TORCHJOBS, elastic, namespace)

        async def world(size: int) -> JsonObject | None:
            status = await status_of(client, namespace, "elastic")
            ok = status.get("phase") == "Running" and status.get("worldSize") == size
            return status if ok and status.get("readyNodes") == size else None

        await wait_for("elastic job Running at world size 4", lambda: world(4), 120)
        before = {
            p["metadata"]["name"]: p["metadata"]["uid"]
            for p in await worker_pods(client, namespace, "elastic")
        }

        await trained("4 workers training", cluster, namespace, list(before), size=4, steps=10)
        # Read now: the scheduler picks the victims, and rank 0 of this round may be on one (its log goes
        # with its pod).
        at_four = job_events(cluster, namespace, list(before), "progress")
        urgent = training_job("urgent", process_nodes, nproc=1, args=train_args(20, 0.2), priority=high)
        await client.create(TORCHJOBS, urgent, namespace)
        shrunk = await wait_for("elastic job running on 2 nodes", lambda: world(2), 150)
        assert shrunk.get("preemptionRestarts", 0) == 0, "no gang restart"
        assert shrunk.get("failureRestarts", 0) == 0
        assert (shrunk["resizes"][-1]["fromNodes"], shrunk["resizes"][-1]["toNodes"]) == (4, 2)
        assert [d["action"] for d in shrunk["disruptions"]] == ["Shrunk", "Shrunk"]

        async def victims_gone() -> list[str] | None:
            # The operator re-creates the taken workers at once (Pending until capacity returns): a
            # survivor is a pod whose UID did not change.
            pods = await worker_pods(client, namespace, "elastic")
            kept = [
                p["metadata"]["name"]
                for p in pods
                if before.get(p["metadata"]["name"]) == p["metadata"]["uid"]
            ]
            return kept if len(kept) == 2 else None

        survivors = await wait_for("the preempted workers gone", victims_gone, 150)
        for name in survivors:
            pod = await client.get(PODS, name, namespace)
            assert pod["status"]["containerStatuses"][0]["restartCount"] == 0

        await trained("survivors training at world size 2", cluster, namespace, list(before), size=2, steps=1)
        await wait_phase(client, namespace, "urgent", "Succeeded", 150)
        await wait_for("grown back to 4", lambda: world(4), 150)
        done = await wait_phase(client, namespace, "elastic", "Succeeded", 300)
        assert done.get("preemptionRestarts", 0) == 0
        assert done.get("failureRestarts", 0) == 0
        later = job_events(cluster, namespace, workers("elastic", 4), "progress")
        # A survivor's early lines are in both reads: each line once, in time order.
        unique = {json.dumps(e, sort_keys=True): e for e in [*at_four, *later]}
        progress = sorted(unique.values(), key=lambda e: e.get("ts", 0))
        steps = _steps_once(progress)
        sizes = [e["world_size"] for e in progress]
        resumes = [
            (e["from_step"], e["new_world_size"])
            for e in job_events(cluster, namespace, workers("elastic", 4), "resume")
        ]
        print(
            f"\nelastic: world sizes trained at: {sorted(set(sizes))}; resumes (from step, world) {resumes}"
        )
        assert {4, 2} <= set(sizes)
        assert steps[-1] == total
        for from_step, _ in resumes:
            # A round that forms after the last step (the grown-back workers join as the survivors finish)
            # resumes from the final checkpoint with nothing left to train.
            if from_step < total:
                assert from_step + 1 in steps, f"resumed from {from_step} but did not go on from there"


async def test_node_loss_under_an_elastic_job_is_recorded_and_the_job_shrinks_and_goes_on(
    cluster: Cluster, crd: str, namespace: str, process_nodes: ProcessNodePool
) -> None:
    names = process_nodes(3, cpu="2", memory="8Gi")
    # Long enough that the survivors still train when pod GC reports the loss: after the Node's deletion it
    # quarantines the orphaned pods for 40 s and looks every 20 s (about 50 s in all here).
    args = train_args(total_steps=600, step_sleep=0.15, global_batch=12)  # trains at 3, then at 2
    async with operator_reconciler(cluster) as reconciler:
        client = reconciler.client
        job = training_job(
            "lossy", process_nodes, count=3, nproc=1, args=args, nodes={"count": 3, "min": 2, "max": 3}
        )
        await client.create(TORCHJOBS, job, namespace)

        async def ready(size: int) -> JsonObject | None:
            status = await status_of(client, namespace, "lossy")
            return status if status.get("phase") == "Running" and status.get("readyNodes") == size else None

        await wait_for("3 nodes ready", lambda: ready(3), 120)
        await trained("3 workers training", cluster, namespace, workers("lossy", 3), size=3, steps=5)
        pods = (await client.list(PODS, namespace)).items
        busy = {p["spec"]["nodeName"] for p in pods if "-worker-" not in p["metadata"]["name"]}
        victim = next(
            p for p in await worker_pods(client, namespace, "lossy") if p["spec"]["nodeName"] not in busy
        )
        node = victim["spec"]["nodeName"]
        assert node in names
        stopped = time.monotonic()
        cluster.process_nodes.stop(node)  # the machine is gone: kubelet and every process of its pods
        cluster.api.delete(f"/api/v1/nodes/{node}")  # as a cloud's node controller would; PodGC follows
        process_nodes.names.remove(node)

        async def lost() -> JsonObject | None:
            status = await status_of(client, namespace, "lossy")
            return status if status.get("disruptions") else None

        status = await wait_for("the node loss recorded", lost, 120)
        recorded = time.monotonic() - stopped
        [entry] = status["disruptions"]
        assert entry["pod"] == victim["metadata"]["name"]
        assert entry["kind"] == "NodeLost", entry
        assert entry["action"] == "Shrunk"
        assert (status["resizes"][-1]["toNodes"], status["resizes"][-1]["cause"]) == (2, "NodeLost")
        done = await wait_phase(client, namespace, "lossy", "Succeeded", 240)
        assert done.get("failureRestarts", 0) == 0
        assert done.get("preemptionRestarts", 0) == 0
        assert done["progress"]["step"] == 600
        survivors = [
            p["metadata"]["name"] for p in pods if p["metadata"]["name"] != victim["metadata"]["name"]
        ]
        progress = job_events(cluster, namespace, [n for n in survivors if "-worker-" in n], "progress")
        # Unlike a drain, a lost node leaves no checkpoint behind: the survivors' new round resumes from the
        # newest periodic one, so up to intervalSteps steps are trained again.
        sizes = [e["world_size"] for e in progress]
        print(f"\nnode loss: recorded {recorded:.1f} s after the stop; world sizes {sorted(set(sizes))}")
        assert sizes[-1] == 2, "the survivors went on at world size 2"
        assert progress[-1]["step"] == 600

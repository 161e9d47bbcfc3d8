"""The TorchJob lifecycle as a pure function: (job, PodGroup, pods, Service, now) -> new status + actions.

Pending -> Queued -> Running -> Succeeded | Failed, with Restarting (whole-gang restart after a failure or a
preemption) and Suspended on the side. The attempt number is ``failureRestarts + preemptionRestarts``: pods
carry it as a label, so a decision about one attempt is taken once, and pods of an older attempt are only ever
deleted. Pod names are the same in every attempt, so the next attempt is created only once the old pods are
gone. Nothing here does I/O; :mod:`controller.torchjob.reconciler` applies the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from api import ConditionType, FailurePolicy, Phase, TorchJob, TorchJobStatus
from controller.runtime.objects import JsonObject
from controller.torchjob import disruption
from controller.torchjob.conditions import for_phase
from controller.torchjob.labels import job_labels, owner_reference, worker_selector
from controller.torchjob.observe import (
    POD_FAILED,
    POD_RUNNING,
    POD_SUCCEEDED,
    Worker,
    observe_podgroup,
    observe_worker,
)
from controller.torchjob.pod import desired_worker
from controller.torchjob.progress import LiveReport, apply_live
from controller.torchjob.queue_gate import QueueProblem
from controller.torchjob.rendezvous import (
    StoreState,
    is_worker,
    observe_store,
    store_creates,
    store_deletes,
)
from controller.torchjob.report import apply_reports
from controller.torchjob.service import desired_service
from scheduling import desired_podgroup, podgroup_name, podgroup_spec_patch

QUEUED_RECHECK: Final = 15.0
"""Seconds between looks at a waiting gang's scheduler events."""

# Condition / event reasons.
REASON_QUEUED: Final = "WaitingForScheduler"
REASON_RUNNING: Final = "AllWorkersRunning"
REASON_SUCCEEDED: Final = "AllWorkersSucceeded"
REASON_RANK0_SUCCEEDED: Final = "Rank0Succeeded"
REASON_SUSPENDED: Final = "Suspended"
REASON_RESUMED: Final = "Resumed"
REASON_RESIZED: Final = "Resized"
REASON_SCALED: Final = "Scaled"
REASON_PREEMPTED: Final = "Preempted"
REASON_AWAITING_CAPACITY: Final = "WaitingForCapacity"
REASON_SHRUNK: Final = "NodesLost"
REASON_REGROWN: Final = "NodesRejoined"
REASON_FAILED_RETRY: Final = "WorkerFailed"
REASON_PERMANENT: Final = "PermanentExitCode"
REASON_FAILURE_BUDGET: Final = "FailureBudgetExhausted"
REASON_PREEMPTION_BUDGET: Final = "PreemptionBudgetExhausted"
REASON_DEADLINE: Final = "DeadlineExceeded"
REASON_CHECKPOINT: Final = "CheckpointCommitted"

RestartCause = Literal["preemption", "failure", "resize"]
"""Why a pass restarts the whole gang (the restart metric's ``cause`` label)."""


# --- actions ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateObject:
    """Create a PodGroup, Service or Pod."""

    kind: Literal["PodGroup", "Service", "Pod"]
    body: JsonObject


@dataclass(frozen=True, slots=True)
class PatchPodGroup:
    """Merge-patch the PodGroup's spec (never PUT: the scheduler owns its status)."""

    name: str
    patch: JsonObject


@dataclass(frozen=True, slots=True)
class DeleteObject:
    """Delete a PodGroup or Pod, only if it still has `uid`."""

    kind: Literal["PodGroup", "Pod"]
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class DeleteJob:
    """Delete the TorchJob itself (TTL after finish)."""


Action = CreateObject | PatchPodGroup | DeleteObject | DeleteJob


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event to record on the job."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(slots=True)
class Plan:
    """The outcome of one planning step.

    ``commit_first``: the status decides something (a restart, a terminal phase) and must be written, with
    the resourceVersion it was computed from, before any action runs; a stale read then fails instead of
    acting twice. ``restart``: the cause when this pass starts a gang restart (announced by its Event), so
    the reconciler counts it without reading it back from Event reasons.
    """

    status: TorchJobStatus
    actions: list[Action] = field(default_factory=list[Action])
    events: list[Event] = field(default_factory=list[Event])
    requeue_after: float | None = None
    commit_first: bool = False
    restart: RestartCause | None = None

    def requeue(self, seconds: float) -> None:
        """Ask to come back in `seconds` (the sooner of several asks wins); used while planning."""
        self.requeue_after = _sooner(self.requeue_after, seconds)

    def come_back_after(self, held: float | None) -> float | None:
        """When the pass must run again: the plan's own ask or `held` (seconds until a status change the
        reconciler held back is due), the sooner; the plan is left as made."""
        return self.requeue_after if held is None else _sooner(self.requeue_after, held)


def _sooner(asked: float | None, seconds: float) -> float:
    """The sooner of an earlier ask (None: none) and `seconds`, never zero (zero means no requeue)."""
    seconds = max(seconds, 0.001)
    return seconds if asked is None else min(asked, seconds)


# --- the plan --------------------------------------------------------------------------------------------


def attempt_of(status: TorchJobStatus) -> int:
    """The current gang attempt: every restart, for whatever cause, starts a new one."""
    return status.failure_restarts + status.preemption_restarts


def plan(
    job: TorchJob,
    podgroup: JsonObject | None,
    pods: list[JsonObject],
    service: JsonObject | None,
    now: datetime,
    podgroup_events: Sequence[JsonObject] = (),
    rendezvous_objects: Sequence[JsonObject] = (),
    departures: disruption.Departures = disruption.NONE_DEPARTED,
    *,
    live: LiveReport | None = None,
    progress_url: str | None = None,
    queue: QueueProblem | None = None,
) -> Plan:
    """Decide the job's next status and the writes that move the world towards it.

    `podgroup_events` are the scheduler's Events on the PodGroup, read only for a gang still waiting;
    `rendezvous_objects` the job's other Services and PodGroups, where an elastic job's dedicated store keeps
    its own (:mod:`.rendezvous`); `departures` what is known of running workers now gone (:mod:`.disruption`);
    `live` the job's latest live progress report (:mod:`.progress`); `progress_url` the operator's progress
    endpoint new workers report to (None: off); `queue` what keeps the job's queue from admitting it, read
    only while the gang waits (:mod:`.queue_gate`).
    """
    old = job.status or TorchJobStatus()
    if job.metadata.deletion_timestamp is not None:
        return Plan(old.model_copy(deep=True))  # the garbage collector removes what the job owns
    status = old.model_copy(deep=True)
    status.observed_generation = job.metadata.generation
    status.selector = worker_selector(job)
    status.pod_group_name = podgroup_name(job)
    if status.phase is None:
        status.phase = Phase.PENDING
    out = Plan(status)
    workers = [w for w in (observe_worker(p) for p in pods) if w is not None]
    store = observe_store(job, pods, rendezvous_objects)
    advanced = apply_reports(job, status, pods, now)
    advanced = apply_live(job, status, live) or advanced
    if advanced and (ckpt := status.last_checkpoint) is not None:
        out.events.append(Event("Normal", REASON_CHECKPOINT, f"step {ckpt.step} committed at {ckpt.path}"))

    if old.phase is not None and old.phase.finished:
        _finish(job, out, podgroup, workers, now)
    elif job.spec.run_policy.suspend:
        _suspend(job, out, podgroup, workers, now)
    elif _deadline_passed(job, out, now):
        _transition(job, out, Phase.FAILED, REASON_DEADLINE, _deadline_message(job), now, "Warning")
        _finish(job, out, podgroup, workers, now)
    else:
        _drive(
            job, out, podgroup, workers, service, now, podgroup_events, store, departures, progress_url, queue
        )
    finished = status.phase.finished
    wanted = not finished and status.phase != Phase.SUSPENDED
    for kind, obj in store_deletes(job, store, wanted=wanted):
        out.actions.append(DeleteObject(kind, obj.name, obj.uid))
    _count(job, out, workers)
    return out


def _drive(
    job: TorchJob,
    out: Plan,
    podgroup: JsonObject | None,
    workers: list[Worker],
    service: JsonObject | None,
    now: datetime,
    podgroup_events: Sequence[JsonObject],
    store: StoreState,
    departures: disruption.Departures = disruption.NONE_DEPARTED,
    progress_url: str | None = None,
    queue: QueueProblem | None = None,
) -> None:
    status = out.status
    if status.phase == Phase.SUSPENDED:
        status.start_time = None  # the deadline counts afresh from the resume
        _transition(job, out, Phase.PENDING, REASON_RESUMED, "job resumed", now, "Normal")
    if status.start_time is None:
        status.start_time = now
        _requeue_for_deadline(job, out, now)

    attempt = attempt_of(status)
    stale = [w for w in workers if w.attempt != attempt]
    if stale:
        # An older gang is still going away; same-named pods of the new attempt must wait for it.
        out.actions.extend(DeleteObject("Pod", w.name, w.uid) for w in stale if not w.deleting)
        return

    current = {w.index: w for w in workers}
    count = job.spec.nodes.count
    if _resized(job, workers):
        # A fixed-size job cannot change its world size in place: the whole gang restarts at the new size
        # (same attempt: the new gang hosts a fresh rendezvous store on its new worker 0).
        out.actions.extend(DeleteObject("Pod", w.name, w.uid) for w in workers if not w.deleting)
        message = f"node count changed to {count}: restarting the gang at the new size"
        if status.phase != Phase.RESTARTING:  # a gang already restarting is one restart, announced once
            out.restart = "resize"
        _transition(job, out, Phase.RESTARTING, REASON_RESIZED, message, now, "Normal")
        return
    if status.phase == Phase.RESTARTING and any(w.deleting for w in workers):
        return  # the old gang is still terminating; same-named pods must wait
    if _judge(job, out, current, count, now, departures):
        out.actions.extend(DeleteObject("Pod", w.name, w.uid) for w in workers if not w.deleting)
        if out.status.phase is not None and out.status.phase.finished:
            out.actions.clear()
            _finish(job, out, podgroup, workers, now)
        return

    _scaled(job, out, now)
    _ensure_gang(job, out, podgroup, service, current, count, attempt, store, progress_url)
    # Volcano counts finished members as scheduled too: a worker done early keeps the gang Running.
    running = sum(1 for w in current.values() if w.phase in (POD_RUNNING, POD_SUCCEEDED) and not w.deleting)
    if running >= job.spec.nodes.min_nodes or status.phase == Phase.RUNNING:
        _transition(
            job,
            out,
            Phase.RUNNING,
            REASON_RUNNING,
            f"all {job.spec.nodes.min_nodes} gang members started",
            now,
            "Normal",
        )
    else:
        # A PodGroup created just now reads as one the scheduler has not looked at yet (no extra write later).
        gang = observe_podgroup(podgroup or {}, podgroup_events)
        message = gang.summary  # counts live in activeNodes/readyNodes, so progress alone rewrites nothing
        out.requeue(QUEUED_RECHECK)  # scheduler events trigger no reconcile: look again for a new reason
        if _preempted(status):
            why = status.last_disruption_reason or REASON_PREEMPTED
            message = f"Preempted ({why}), waiting for capacity: {message}"
            _transition(job, out, Phase.PREEMPTED, REASON_AWAITING_CAPACITY, message, now, "Warning")
        elif queue is not None:
            # Said once when it starts (a Warning), not on every look.
            before = status.condition(ConditionType.QUEUED)
            again = before is None or before.reason != queue.reason or before.message != queue.message
            reason, why = queue.reason, queue.message
            _transition(job, out, Phase.QUEUED, reason, why, now, "Warning", force_event=again)
        else:
            # The first reason the scheduler gives (or a new one) gets an Event too, not only the condition.
            before = status.condition(ConditionType.QUEUED)
            news = bool(gang.reason) and before is not None and f"({gang.reason})" not in before.message
            _transition(job, out, Phase.QUEUED, REASON_QUEUED, message, now, "Normal", force_event=news)
    if (grown := disruption.regrown(status, current, now)) is not None:
        what = f"{grown.from_nodes} -> {grown.to_nodes} nodes ({grown.cause})"
        out.events.append(Event("Normal", REASON_REGROWN, f"replacement workers joined: {what}"))


def _scaled(job: TorchJob, out: Plan, now: datetime) -> None:
    """A running elastic job whose node count was changed (``kubectl scale``, an edit): workers are added or
    removed in place (no restart), recorded as a resize with an Event."""
    status = out.status
    before, after = status.desired_nodes, job.spec.nodes.count
    if not job.spec.nodes.elastic or status.phase != Phase.RUNNING or not before or before == after:
        return
    disruption.resize(status, now, before, after, disruption.CAUSE_SCALED)
    how = "workers added" if after > before else "highest-index workers removed"
    message = f"spec.nodes.count changed {before} -> {after}: {how} in place, without a gang restart"
    out.events.append(Event("Normal", REASON_SCALED, message))


def _preempted(status: TorchJobStatus) -> bool:
    """A gang restarted for a preemption and not yet running again."""
    if status.phase == Phase.PREEMPTED:
        return True
    restarting = status.condition(ConditionType.RESTARTING)
    return (
        status.phase == Phase.RESTARTING and restarting is not None and restarting.reason == REASON_PREEMPTED
    )


def _judge(
    job: TorchJob,
    out: Plan,
    current: dict[int, Worker],
    count: int,
    now: datetime,
    departures: disruption.Departures = disruption.NONE_DEPARTED,
) -> bool:
    """Act on the current attempt's outcome; True when the gang must go (restart or finish)."""
    status = out.status
    policy = job.spec.failure_policy
    rank0 = job.spec.success_policy == "Rank0"
    if rank0 and (first := current.get(0)) is not None and first.phase == POD_SUCCEEDED:
        # Worker 0's exit 0 is the outcome, whatever the others are doing or did (disruptions included).
        message = _rank0_message(current)
        _transition(job, out, Phase.SUCCEEDED, REASON_RANK0_SUCCEEDED, message, now, "Normal")
        return True
    lost = disruption.losses(job, status, current, departures)
    if lost:
        what = "; ".join(loss.describe() for loss in lost)
        left = disruption.remaining(current, lost)
        if disruption.can_shrink(job, status, left):
            _shrink(job, out, current, lost, left, now)
            return False
        disruption.record(status, lost, now, "Restarted")
        if status.preemption_restarts >= policy.max_preemption_restarts:
            message = f"{what}; preemption restart budget ({policy.max_preemption_restarts}) exhausted"
            _transition(job, out, Phase.FAILED, REASON_PREEMPTION_BUDGET, message, now, "Warning")
            return True
        status.preemption_restarts += 1
        _restart(job, out, "preemption", lost[0].reason, what, now)
        return True

    if job.spec.nodes.elastic and _elastic_done(current):
        done = sum(1 for w in current.values() if w.phase == POD_SUCCEEDED)
        message = f"all {count} workers succeeded"
        if done < count:
            message = (
                f"training completed: {done} of {count} workers succeeded (elastic, the others not in it)"
            )
        _transition(job, out, Phase.SUCCEEDED, REASON_SUCCEEDED, message, now, "Normal")
        return True

    # A disrupted worker (recorded above) is never a failure, even if its pod ended Failed. Under Rank0
    # only worker 0's exit counts: the others' agents may end at different times, and with any code.
    failed = sorted(
        (
            w
            for w in current.values()
            if w.phase == POD_FAILED and w.disruption is None and (not rank0 or w.index == 0)
        ),
        key=lambda w: w.index,
    )
    if failed:
        first = failed[0]
        code = first.exit_code
        what = f"{first.name} failed" + (f" with exit code {code}" if code is not None else "")
        said = f": {first.message}" if first.message else ""
        if code is not None and code != 0 and is_permanent(policy, code):
            _transition(job, out, Phase.FAILED, REASON_PERMANENT, f"{what} (permanent){said}", now, "Warning")
            return True
        if status.failure_restarts >= policy.max_failure_restarts:
            message = f"{what}; failure restart budget ({policy.max_failure_restarts}) exhausted{said}"
            _transition(job, out, Phase.FAILED, REASON_FAILURE_BUDGET, message, now, "Warning")
            return True
        status.failure_restarts += 1
        cause = f"ExitCode{code}" if code is not None else "PodFailed"
        _restart(job, out, "failure", cause, what, now)
        return True

    if all(i in current and current[i].phase == POD_SUCCEEDED for i in range(count)):
        _transition(
            job, out, Phase.SUCCEEDED, REASON_SUCCEEDED, f"all {count} workers succeeded", now, "Normal"
        )
        return True
    return False


def _rank0_message(current: dict[int, Worker]) -> str:
    """What a Rank0 success leaves behind: the workers it stops and the exits it overrules."""
    others = [w for i, w in sorted(current.items()) if i != 0]
    stopping = [w.name for w in others if not w.finished and not w.deleting]
    failed = [w.name for w in others if w.phase == POD_FAILED]
    message = "worker 0 succeeded (successPolicy Rank0)"
    if stopping:
        message += f"; stopping {len(stopping)} unfinished worker(s): {', '.join(stopping)}"
    if failed:
        message += f"; exits of {', '.join(failed)} ignored"
    return message


def _elastic_done(current: dict[int, Worker]) -> bool:
    """An elastic job's training is over once a worker exited 0 (torchrun's agents do so only when the
    workers of the final rendezvous round all completed) and no worker in that round is still finishing.
    A replacement that was not in the round (still Pending, or started late against the closed rendezvous
    and failed) is no part of the outcome."""
    if not any(w.phase == POD_SUCCEEDED for w in current.values()):
        return False
    return not any(w.phase == POD_RUNNING and w.ready and not w.deleting for w in current.values())


def _shrink(
    job: TorchJob,
    out: Plan,
    current: dict[int, Worker],
    lost: list[disruption.Loss],
    left: int,
    now: datetime,
) -> None:
    """An elastic job goes on with the nodes it has left; the lost workers are replaced (same attempt) once
    their pods are gone, and join when capacity returns."""
    status = out.status
    disruption.record(status, lost, now, "Shrunk")
    entry = disruption.resize(status, now, left + len(lost), left, lost[0].kind.value)
    gone = {loss.uid for loss in lost if loss.uid}
    out.actions.extend(
        DeleteObject("Pod", w.name, w.uid) for w in current.values() if w.uid in gone and not w.deleting
    )
    message = (
        "; ".join(loss.describe() for loss in lost)
        + f": training goes on with {entry.to_nodes} of {job.spec.nodes.count} nodes (min "
        f"{job.spec.nodes.min_nodes}) without a restart; replacements join when capacity returns"
    )
    out.events.append(Event("Warning", REASON_SHRUNK, message))


def _resized(job: TorchJob, workers: list[Worker]) -> bool:
    """A fixed-size job whose running gang was started for another node count."""
    nodes = job.spec.nodes
    if nodes.elastic:
        return False
    want = f"{nodes.min_nodes}:{nodes.max_nodes}"
    return any(w.nnodes is not None and w.nnodes != want for w in workers if w.active)


def is_permanent(policy: FailurePolicy, code: int) -> bool:
    """A code in permanentExitCodes, or outside retryableExitCodes when that list is set."""
    if code in (policy.permanent_exit_codes or ()):
        return True
    return policy.retryable_exit_codes is not None and code not in policy.retryable_exit_codes


def _restart(job: TorchJob, out: Plan, restart: RestartCause, cause: str, what: str, now: datetime) -> None:
    """Restart the gang as the next attempt for `restart` (`cause`: the disruption's or exit's reason)."""
    reason = REASON_PREEMPTED if restart == "preemption" else REASON_FAILED_RETRY
    out.restart = restart
    status = out.status
    status.last_disruption_reason = cause
    status.last_disruption_time = now
    message = (
        f"{what}; restarting the gang as attempt {attempt_of(status)} "
        f"(failure restarts {status.failure_restarts}, preemption restarts {status.preemption_restarts})"
    )
    _transition(job, out, Phase.RESTARTING, reason, message, now, "Warning", force_event=True)


def _ensure_gang(
    job: TorchJob,
    out: Plan,
    podgroup: JsonObject | None,
    service: JsonObject | None,
    current: dict[int, Worker],
    count: int,
    attempt: int,
    store: StoreState,
    progress_url: str | None = None,
) -> None:
    """PodGroup first, then the Service, an elastic job's rendezvous store, then the missing workers (the
    reconciler keeps this order). Workers are told the newest checkpoint the status knows of."""
    desired = desired_podgroup(job, owner_reference(job), job_labels(job))
    if podgroup is None:
        out.actions.append(CreateObject("PodGroup", desired.to_k8s()))
    elif (patch := podgroup_spec_patch(podgroup, desired)) is not None:
        out.actions.append(PatchPodGroup(podgroup_name(job), patch))
    if service is None:
        out.actions.append(CreateObject("Service", desired_service(job)))
    out.actions.extend(CreateObject(kind, body) for kind, body in store_creates(job, store))
    last = out.status.last_checkpoint
    resume_from = last.path if last is not None else None
    for index in range(count):
        if index not in current:
            out.actions.append(
                CreateObject("Pod", desired_worker(job, index, attempt, resume_from, progress_url))
            )
    for index, worker in sorted(current.items()):
        if index >= count and not worker.deleting:
            out.actions.append(DeleteObject("Pod", worker.name, worker.uid))


def _suspend(
    job: TorchJob, out: Plan, podgroup: JsonObject | None, workers: list[Worker], now: datetime
) -> None:
    out.actions.extend(DeleteObject("Pod", w.name, w.uid) for w in workers if not w.deleting)
    _delete_podgroup(out, podgroup)
    out.status.start_time = None
    _transition(
        job, out, Phase.SUSPENDED, REASON_SUSPENDED, "job suspended: pods and PodGroup deleted", now, "Normal"
    )


def _finish(
    job: TorchJob, out: Plan, podgroup: JsonObject | None, workers: list[Worker], now: datetime
) -> None:
    """A finished job frees its queue quota (PodGroup), cleans pods per policy and expires after its TTL."""
    status = out.status
    if status.completion_time is None:
        status.completion_time = now
    _delete_podgroup(out, podgroup)
    policy = job.spec.run_policy.clean_pod_policy
    # A Rank0 success stops the workers still running (a graceful delete) even under cleanPodPolicy None:
    # the job is over, and their gang's PodGroup is gone.
    stop_running = policy != "None" or (
        job.spec.success_policy == "Rank0" and status.phase == Phase.SUCCEEDED
    )
    for w in workers:
        if w.deleting:
            continue
        if policy == "All" or (stop_running and not w.finished):
            out.actions.append(DeleteObject("Pod", w.name, w.uid))
    ttl = job.spec.run_policy.ttl_seconds_after_finished
    if ttl is not None:
        left = (status.completion_time + timedelta(seconds=ttl) - now).total_seconds()
        if left <= 0:
            out.actions.append(DeleteJob())
        else:
            out.requeue(left)


def _delete_podgroup(out: Plan, podgroup: JsonObject | None) -> None:
    if podgroup is None:
        return
    meta: JsonObject = podgroup.get("metadata") or {}
    if meta.get("deletionTimestamp") is None:
        out.actions.append(DeleteObject("PodGroup", str(meta.get("name", "")), str(meta.get("uid", ""))))


def _deadline_passed(job: TorchJob, out: Plan, now: datetime) -> bool:
    deadline = job.spec.run_policy.active_deadline_seconds
    start = out.status.start_time
    if deadline is None or start is None:
        return False
    left = (start + timedelta(seconds=deadline) - now).total_seconds()
    if left > 0:
        out.requeue(left)
        return False
    return True


def _requeue_for_deadline(job: TorchJob, out: Plan, now: datetime) -> None:
    deadline = job.spec.run_policy.active_deadline_seconds
    if deadline is not None and out.status.start_time is not None:
        out.requeue((out.status.start_time + timedelta(seconds=deadline) - now).total_seconds())


def _deadline_message(job: TorchJob) -> str:
    return f"job ran longer than activeDeadlineSeconds ({job.spec.run_policy.active_deadline_seconds} s)"


def _transition(
    job: TorchJob,
    out: Plan,
    phase: Phase,
    reason: str,
    message: str,
    now: datetime,
    event_type: Literal["Normal", "Warning"],
    *,
    force_event: bool = False,
) -> None:
    """Move to `phase` (conditions kept in step) and record an Event when the phase changes."""
    status = out.status
    changed = status.phase != phase
    status.phase = phase
    status.conditions = for_phase(
        status.conditions or [], phase, reason, message, now, job.metadata.generation
    )
    if phase in (Phase.RESTARTING, Phase.SUCCEEDED, Phase.FAILED):
        out.commit_first = True
    if phase.finished:
        status.completion_time = status.completion_time or now
    if changed or force_event:
        out.events.append(Event(event_type, reason, message))


def _count(job: TorchJob, out: Plan, workers: list[Worker]) -> None:
    status = out.status
    attempt = attempt_of(status)
    going = {a.uid for a in out.actions if isinstance(a, DeleteObject) and a.kind == "Pod"}
    current = [w for w in workers if w.attempt == attempt and w.uid not in going]
    finished = status.phase is not None and status.phase.finished
    status.desired_nodes = 0 if finished or status.phase == Phase.SUSPENDED else job.spec.nodes.count
    created = sum(  # workers only: an elastic job's rendezvous store is no node
        1 for a in out.actions if isinstance(a, CreateObject) and a.kind == "Pod" and is_worker(a.body)
    )
    status.active_nodes = sum(1 for w in current if w.active) + created
    status.ready_nodes = sum(1 for w in current if w.active and w.phase == POD_RUNNING and w.ready)
    nproc = job.spec.nproc_per_node
    if isinstance(nproc, int):
        status.world_size = status.ready_nodes * nproc

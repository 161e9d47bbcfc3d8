"""The TorchJob reconciler: reads the informer caches, computes the plan, applies it. All I/O lives here.

Writes are minimal: the status is patched through ``/status`` only when it changed (with the
resourceVersion it was computed from, so a stale read conflicts instead of acting twice), the PodGroup
spec only by merge patch, and creates/deletes only what the plan asks for. Expectations keep a lagging cache
from causing a second create or a double-counted restart.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from itertools import groupby
from typing import Final, TypeVar

import anyio
from pydantic import ValidationError

from api import Phase, TorchJob, TorchJobStatus
from controller.runtime import objects
from controller.runtime.cache import deep_copy, owner_uid_index
from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.errors import AlreadyExists, ApiError, NotFound
from controller.runtime.informer import InformerEvent
from controller.runtime.manager import Manager
from controller.runtime.objects import JsonObject
from controller.runtime.predicate import content_changed
from controller.runtime.reconcile import Request, Result, TerminalError
from controller.runtime.recorder import EventRecorder, ObjectRef
from controller.runtime.resource import EVENTS, PODS, SERVICES, Resource
from controller.torchjob.accounting import FIELDS as ACCOUNTING_FIELDS
from controller.torchjob.accounting import account
from controller.torchjob.disruption import EVICT_EVENT, NONE_DEPARTED, Departures, vanished
from controller.torchjob.expectations import Expectations
from controller.torchjob.kinds import PODGROUPS, TORCHJOBS
from controller.torchjob.labels import JOB_NAME_LABEL, REPLICA_INDEX_LABEL, worker_name
from controller.torchjob.metrics import JobMetrics
from controller.torchjob.observe import observe_worker, worker_slot
from controller.torchjob.parsed import ParsedJobs
from controller.torchjob.plan import (
    REASON_RANK0_SUCCEEDED,
    Action,
    CreateObject,
    DeleteJob,
    DeleteObject,
    Event,
    PatchPodGroup,
    Plan,
    attempt_of,
    plan,
)
from controller.torchjob.ports import allocate, needs_host_ports, taken_ports
from controller.torchjob.progress_endpoint import Address, ProgressEndpoint
from controller.torchjob.prune import prune_pod, prune_podgroup
from controller.torchjob.queue_gate import QueueProblem
from controller.torchjob.queue_reader import QueueReader
from controller.torchjob.rates import Rates
from controller.torchjob.refusal import Refusal, created, refused
from controller.torchjob.runtime import RuntimeResolver
from controller.torchjob.service import WORKERS_SERVICE
from scheduling import podgroup_name

log = logging.getLogger(__name__)

OWNER_INDEX: Final = "owner-uid"
COMPONENT: Final = "pyroclast"
STATUS_BATCH: Final = 2.0
"""Seconds a minor status change (counts, messages, the first Pending/Queued) may wait to ride along."""
# A change here is written at once: events and metrics of a transition assume the status shows it.
# Disruptions and resizes too: a disrupted pod is recorded once, by its UID in the written history.
# A new checkpoint too: restarted workers resume from it, and its Event is recorded once. Progress never is.
_MAJOR_FIELDS: Final = (
    "phase",
    "failureRestarts",
    "preemptionRestarts",
    "disruptions",
    "resizes",
    "lastCheckpoint",
)
_TRANSIENT: Final = frozenset({None, Phase.PENDING, Phase.QUEUED})
_DONE: Final = frozenset(p for p in Phase if p.finished)
_WAITING: Final = frozenset({Phase.PENDING, Phase.QUEUED, Phase.PREEMPTED})
"""A new job moving among these phases is transient: a gang admitted within ``STATUS_BATCH`` goes straight
to Running in one write; one that really waits shows Queued (with the reason) ``STATUS_BATCH`` later."""
DEPARTED_TTL: Final = 600.0
"""Seconds the last state of a deleted, disrupted worker pod is kept for the reconcile that finds it gone."""
CACHE_WAIT: Final = 1.0
"""Seconds to come back after while the cache has not shown this process's own writes."""
SLOW_START_INITIAL: Final = 1
"""Pod creates in the first parallel batch; each next batch is twice the size (client-go's slowStartBatch)."""

_KINDS: Final[dict[str, Resource]] = {"PodGroup": PODGROUPS, "Service": SERVICES, "Pod": PODS}


def _transient(old: TorchJobStatus, new: TorchJobStatus) -> bool:
    """A not-yet-running job's move between Pending and Queued, restart counters unchanged."""
    return (
        old.phase in _TRANSIENT
        and new.phase in _TRANSIENT
        and old.failure_restarts == new.failure_restarts
        and old.preemption_restarts == new.preemption_restarts
    )


def _headline(event: Event) -> tuple[str, str, str]:
    """An Event's type, reason and message up to the first ": " (the counts that follow change often)."""
    return event.type, event.reason, event.message.split(": ", 1)[0]


def _says_more(event: Event, announced: frozenset[Event]) -> bool:
    """Whether `event` tells more than the Events already recorded for a held phase: another reason, or the
    scheduler's reason where the announced message had none."""
    return _headline(event) not in {_headline(a) for a in announced}


def slow_start(total: int, initial: int = SLOW_START_INITIAL) -> Iterator[int]:
    """Batch sizes covering `total` creates: `initial`, then doubling, the last one cut to what is left."""
    if initial < 1:
        raise ValueError(f"the first slow-start batch must hold >= 1 create, got {initial}")
    done, size = 0, initial
    while done < total:
        batch = min(size, total - done)
        yield batch
        done += batch
        size *= 2


def vetted_batches(total: int) -> Iterator[int]:
    """Batch sizes covering `total` creates whose spec a dry run admitted: the first alone (an elastic job's
    store pod comes up before the workers that dial it), then the rest together."""
    if total > 0:
        yield 1
    if total > 1:
        yield total - 1


_A = TypeVar("_A", CreateObject, DeleteObject)


def _is_pod_create(action: Action) -> bool:
    return isinstance(action, CreateObject) and action.kind == "Pod"


def _pod_verb(action: Action) -> str | None:
    """`create` or `delete` for a pod action (a run of them goes in parallel); None for any other."""
    if _is_pod_create(action):
        return "create"
    return "delete" if isinstance(action, DeleteObject) and action.kind == "Pod" else None


def utcnow() -> datetime:
    """Now, timezone-aware, whole seconds (as the API server stores times)."""
    return datetime.now(UTC).replace(microsecond=0)


class TorchJobReconciler:
    """Reconciles TorchJobs on a :class:`~controller.runtime.manager.Manager`; :meth:`controller` registers
    it."""

    def __init__(
        self,
        manager: Manager,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        expectations: Expectations | None = None,
        progress_bind: Address | None = None,
        progress_url: str | None = None,
        recorder: EventRecorder | None = None,
        rates: Rates | None = None,
    ):
        """`progress_bind`: serve live progress reports there (:mod:`.progress_endpoint`); `progress_url`:
        where workers reach it (given to new worker pods with a token; None: they do not report live);
        `recorder`: where Events go (None: a recorder of its own, run on `manager`); `rates`: the prices the
        jobs' usage is costed at (None: no cost in status)."""
        self.client: Client = manager.client
        if recorder is None:
            recorder = EventRecorder(self.client, component=COMPONENT)
            manager.add_runnable(recorder.run)
        self.recorder = recorder
        # Caches hold what the operator reads (.prune); TorchJobs as compact JSON, read once per reconcile.
        # These list in pages first: the watch cache answers resourceVersion "0" in one body whatever the
        # limit, and 10,000 whole TorchJobs decoded at once would take the operator past its 250 MB budget at
        # that scale; 80,000 whole pods (pruned at ingest) never sit in memory at once either.
        self.jobs = manager.informer(TORCHJOBS, compact=True, paged_first_list=True).cache
        self.pods = manager.informer(PODS, transform=prune_pod, paged_first_list=True).cache
        self.podgroups = manager.informer(PODGROUPS, transform=prune_podgroup, paged_first_list=True).cache
        self.services = manager.informer(SERVICES).cache
        self.queues = QueueReader(self.client, monotonic=monotonic)
        self.runtimes = RuntimeResolver(self.client, recorder, TORCHJOBS)
        for cache in (self.pods, self.podgroups, self.services):
            cache.add_index(OWNER_INDEX, owner_uid_index)
        self.clock = clock
        self.rates = rates
        self.expectations = expectations or Expectations()
        self.metrics = JobMetrics()
        self.parsed = ParsedJobs()
        self._monotonic = monotonic
        self._batch_until: dict[str, float] = {}
        self._announced: dict[str, tuple[Phase, datetime, frozenset[Event]]] = {}
        self._departed: dict[str, tuple[float, JsonObject]] = {}
        """Per `<job uid>/<pod name>`, the last state of a disrupted worker pod deleted lately, and when."""
        manager.informer(PODS).add_handler(self._remember_departed)
        """Per job, a held-back phase whose Event was already recorded (not to record it twice), and since
        when it is held."""
        self.progress_url = progress_url
        self.progress: ProgressEndpoint | None = None
        """Served once :meth:`controller` made the controller whose queue its reports enqueue into."""
        self._progress_bind = progress_bind
        self._manager = manager

    def controller(self, *, workers: int = 4) -> Controller:
        """The controller: TorchJobs, and the pods, Services and PodGroups they own."""
        # Owned objects are cached pruned to what the plan reads: an update that changed nothing of that (a
        # pod's binding, most PodGroup status writes) has no reconcile to ask for.
        controller = Controller(
            self.reconcile,
            for_=TORCHJOBS,
            name="torchjob",
            owns=[PODS, SERVICES, PODGROUPS],
            owns_predicates=[content_changed],
            workers=workers,
        )
        if self._progress_bind is not None:
            if self.progress is not None:
                raise RuntimeError(
                    "the TorchJob controller is made once: the progress endpoint serves one queue"
                )
            self.progress = ProgressEndpoint(
                self.client,
                self.jobs,
                self.pods,
                self._progress_bind,
                enqueue=controller.enqueue,
                clock=self.clock,
                tracer_provider=self._manager.tracer_provider,
            )
            self._manager.add_runnable(self.progress.serve)
        return controller

    # --- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, request: Request) -> Result:
        """One level-triggered pass over the job named by `request`."""
        raw = self.jobs.get(request.key, copy=False)  # read-only: parsed from a fresh copy on a miss
        if raw is None:
            self.parsed.forget(request.key)
            self._batch_until.pop(request.key, None)
            self._announced.pop(request.key, None)
            self.expectations.forget(request.key)
            self.metrics.forget(request.key)
            if self.progress is not None:
                self.progress.forget(request.key)
            return Result()
        fresh: Callable[[], JsonObject] = lambda: deep_copy(raw)  # noqa: E731
        spec: JsonObject = raw.get("spec") or {}
        if spec.get("runtimeRef") is not None:
            resolution = await self.runtimes.resolve(request, raw, self.clock())
            if resolution.result is not None:
                if resolution.written:
                    self.expectations.status_written(request.key, objects.resource_version(raw))
                return resolution.result
            effective = resolution.job
            fresh = lambda: deep_copy(effective)  # noqa: E731
        try:
            job = self.parsed.get(request.key, raw, fresh)
        except ValidationError as err:
            raise TerminalError(f"TorchJob {request} does not parse: {err}") from err
        uid = job.metadata.uid or ""
        # Not copied: the plan and everything here only read owned objects (tests/torchjob check it).
        owned_pods = self.pods.by_index(OWNER_INDEX, uid, copy=False)
        owned_pgs = self.podgroups.by_index(OWNER_INDEX, uid, copy=False)
        owned_svcs = self.services.by_index(OWNER_INDEX, uid, copy=False)
        if self.expectations.pending(request.key) and not self._caught_up(
            request.key, raw, (("Pod", owned_pods), ("PodGroup", owned_pgs), ("Service", owned_svcs))
        ):
            log.debug("torchjob %s: waiting for the cache to show earlier writes", request)
            return Result(requeue_after=CACHE_WAIT)

        if needs_host_ports(job) and not (job.status is not None and job.status.phase in _DONE):
            await self._allocate_ports(request, raw, job)
            return Result(requeue_after=CACHE_WAIT)

        pg_name = podgroup_name(job)
        podgroup = next((p for p in owned_pgs if objects.name(p) == pg_name), None)
        service = self.services.get(f"{request.namespace}/{WORKERS_SERVICE}", copy=False)
        now = self.clock()
        events = await self._podgroup_events(job, podgroup)
        others = [o for o in (*owned_svcs, *owned_pgs) if o is not podgroup]
        departures = await self._departures(job, owned_pods)
        queue = await self._queue_problem(job, podgroup)
        step = plan(
            job,
            podgroup,
            owned_pods,
            service,
            now,
            events,
            rendezvous_objects=others,
            departures=departures,
            live=self.progress.latest(request.key) if self.progress is not None else None,
            progress_url=self.progress_url,
            queue=queue,
        )

        old = job.status or TorchJobStatus()
        # What this pass writes: the plan's status with its usage and goodput (the plan is not edited).
        step = replace(step, status=account(job, old, step.status, owned_pods, now, self.rates))
        self._log_recomputed(request, old, step.status)
        queue_name = job.spec.scheduling.queue
        # A new job: its first gang attempt, nothing created yet. Its first worker is dry-run before anything
        # is created.
        new_job = not owned_pods and podgroup is None and attempt_of(old) == 0
        if step.commit_first:
            deferred = await self._write_status(request, raw, old, step, queue=queue_name, commit_first=True)
            written = step.status.model_copy(deep=True)
            refusal = await self._apply(request, job, step, dry_run_first=new_job)
            if self._settle(request, old, step, refusal, now):
                # The decision is written; what follows is only the create outcome, on the written version.
                deferred = await self._write_status(
                    request, raw, written, step, urgent=True, queue=queue_name, commit_first=False
                )
        else:
            refusal = await self._apply(request, job, step, dry_run_first=new_job)
            urgent = self._settle(request, old, step, refusal, now)
            deferred = await self._write_status(
                request, raw, old, step, urgent=urgent, queue=queue_name, commit_first=False
            )
        queued_since = self._dedupe_held_events(request.key, old, step, now, held=deferred is not None)
        self._record(job, old, step, now, queued_since)
        if step.status.phase is not None:
            self.metrics.observe(request.key, step.status.phase, job.spec.scheduling.queue)
        if refusal is not None and refusal.final:
            return Result()  # only an edit of the job can help, and the edit brings it back
        if refusal is not None:
            return Result(requeue=True)  # retried with the queue's per-item exponential backoff
        requeue_after = step.come_back_after(deferred)
        return Result(requeue_after=requeue_after) if requeue_after else Result()

    @staticmethod
    def _log_recomputed(request: Request, old: TorchJobStatus, new: TorchJobStatus) -> None:
        """A restart's lost steps, once: the pass that decides it (its status is written at once)."""
        before = old.goodput.recomputed_steps if old.goodput is not None else 0
        if new.goodput is not None and new.goodput.recomputed_steps > before:
            redo = new.goodput.recomputed_steps - before
            log.info(
                "torchjob %s: restart loses %d step(s) after the newest checkpoint; they will be recomputed",
                request,
                redo,
                extra={"recomputed_steps": redo, "goodput_percent": new.goodput.percent},
            )

    def _settle(
        self, request: Request, old: TorchJobStatus, step: Plan, refusal: Refusal | None, now: datetime
    ) -> bool:
        """Fold this pass's create outcome into the status (:mod:`.refusal`); whether the status changed.

        A refusal is logged once per distinct apiserver message (without a traceback: it is the user's to
        fix, and every retry would repeat it); later retries of the same refusal log at debug only.
        """
        before = step.status.to_k8s()
        generation = step.status.observed_generation
        if refusal is None:
            created(step, now, generation)
        elif refused(old, step, refusal, now, generation):
            log.warning(
                "torchjob %s: %s",
                request,
                refusal.describe(),
                extra={"kind": refusal.kind, "object": refusal.name, "code": refusal.code},
            )
        else:
            log.debug("torchjob %s: still refused: %s", request, refusal.describe())
        return step.status.to_k8s() != before

    def _caught_up(self, key: str, raw: JsonObject, owned: tuple[tuple[str, list[JsonObject]], ...]) -> bool:
        """Whether the caches show this process's earlier writes for the job (see :class:`Expectations`)."""
        seen_names = {(kind, objects.name(o)) for kind, objs in owned for o in objs}
        # A delete is observed once the object is gone or shows its deletionTimestamp (graceful termination).
        seen_uids = {
            (kind, str(objects.metadata(o).get("uid", "")))
            for kind, objs in owned
            for o in objs
            if objects.metadata(o).get("deletionTimestamp") is None
        }
        return self.expectations.satisfied(key, objects.resource_version(raw), seen_names, seen_uids)

    def _dedupe_held_events(
        self, key: str, old: TorchJobStatus, step: Plan, now: datetime, *, held: bool
    ) -> datetime | None:
        """A change held back is announced (Event) once, when first seen, not again on the passes until it is
        written; an Event that says more than the announced ones (the scheduler's reason, seen meanwhile)
        still goes.

        Returns since when a Queued phase that was never written had been held (for the time-Queued metric).
        """
        phase = step.status.phase
        announced = self._announced.get(key)
        if announced is not None:
            step.events[:] = [e for e in step.events if _says_more(e, announced[2])]
        if held and phase is not None:
            if announced is None or announced[0] != phase:
                since = now if phase != old.phase else (announced[1] if announced is not None else now)
                self._announced[key] = (phase, since, frozenset(step.events))
            else:
                self._announced[key] = (phase, announced[1], announced[2] | frozenset(step.events))
            return None
        self._announced.pop(key, None)
        if announced is None or announced[0] != Phase.QUEUED or old.phase == Phase.QUEUED:
            return None
        return announced[1]

    def _remember_departed(self, event: InformerEvent) -> None:
        """Keep the last state of a deleted worker pod that shows a disruption, for a while: a reconcile may
        only see it gone."""
        now = self._monotonic()
        self._departed = {k: v for k, v in self._departed.items() if now - v[0] < DEPARTED_TTL}
        if event.type != "delete" or event.final_state_unknown:
            return
        worker = observe_worker(event.obj)
        if worker is not None and worker.disruption is not None:
            for owner in owner_uid_index(event.obj):
                self._departed[f"{owner}/{worker.name}"] = (now, event.obj)

    async def _departures(self, job: TorchJob, pods: list[JsonObject]) -> Departures:
        """What is known of workers of the running gang that are gone: their last state when it showed a
        disruption, else the scheduler's Evict Events (read only then)."""
        status = job.status
        if status is None or status.phase != Phase.RUNNING:
            return NONE_DEPARTED
        attempt = attempt_of(status)
        slots = (worker_slot(p) for p in pods)
        current = {index for index, of in (s for s in slots if s is not None) if of == attempt}
        gone = [worker_name(job, i) for i in vanished(job, status, current)]
        if not gone:
            return NONE_DEPARTED
        uid = job.metadata.uid or ""
        last = [self._departed[k][1] for k in (f"{uid}/{name}" for name in gone) if k in self._departed]
        if len(last) == len(gone):
            return Departures(last_states=last)
        selector = f"involvedObject.kind=Pod,reason={EVICT_EVENT}"
        try:
            events = (await self.client.list(EVENTS, job.metadata.namespace, field_selector=selector)).items
        except Exception as err:  # the cause is a nicety; the loss is handled without it
            log.info("could not read Evict events in %s: %s", job.metadata.namespace, err)
            events = []
        return Departures(last_states=last, events=events)

    async def _queue_problem(self, job: TorchJob, podgroup: JsonObject | None) -> QueueProblem | None:
        """What keeps the job's queue from admitting it, read only while the gang waits to be admitted."""
        status = job.status
        if status is not None and status.phase not in _WAITING and status.phase != Phase.CREATE_FAILED:
            return None
        pg_status: JsonObject = (podgroup or {}).get("status") or {}
        if pg_status.get("phase") not in (None, "Pending", "Inqueue"):  # Volcano enqueues into a Closed one
            return None
        return await self.queues.problem(job.spec.scheduling.queue)

    async def _podgroup_events(self, job: TorchJob, podgroup: JsonObject | None) -> list[JsonObject]:
        """The scheduler's Events on a PodGroup the enqueue gate keeps waiting without a condition (only
        then: the condition, when present, says the same without a read)."""
        status = job.status
        if podgroup is None or status is None or status.phase not in _WAITING:
            return []
        pg_status: JsonObject = podgroup.get("status") or {}
        if pg_status.get("conditions") or pg_status.get("phase") not in (None, "Pending", "Inqueue"):
            return []
        selector = f"involvedObject.kind=PodGroup,involvedObject.name={objects.name(podgroup)}"
        try:
            return (await self.client.list(EVENTS, job.metadata.namespace, field_selector=selector)).items
        except Exception as err:  # the reason is a nicety; never fail the reconcile for it
            log.info("could not read PodGroup events of %s: %s", objects.name(podgroup), err)
            return []

    async def _write_status(
        self,
        request: Request,
        raw: JsonObject,
        old: TorchJobStatus,
        step: Plan,
        *,
        urgent: bool = False,
        queue: str = "",
        commit_first: bool,
    ) -> float | None:
        """Patch the status if it changed; returns seconds to come back when a minor change is held back.

        A change of phase or restart counters is written at once. Anything else (node counts, the scheduler's
        message) waits up to ``STATUS_BATCH`` seconds to ride along with the next write, as pods of a gang
        change one by one; so does a new job's first Pending/Queued phase (see ``_TRANSIENT``). Terminal
        phases, Restarting and restart counters are never held; nor is an `urgent` change (a refused create
        shown or cleared: the refused pass is retried with backoff, which may be long). Usage and goodput
        never count as a change (:mod:`.accounting`): they ride along with a write made for something else.
        `commit_first`: this write carries the plan's decision (:attr:`Plan.commit_first`): at once, and
        conditional on the resourceVersion read; False once that decision is written.
        """
        before = old.to_k8s()
        after = step.status.to_k8s()
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        if not changed - ACCOUNTING_FIELDS:
            self._batch_until.pop(request.key, None)
            return None
        major = urgent or commit_first or any(before.get(k) != after.get(k) for k in _MAJOR_FIELDS)
        if major and not (commit_first or urgent) and _transient(old, step.status):
            major = False
        if not major:
            until = self._batch_until.setdefault(request.key, self._monotonic() + STATUS_BATCH)
            left = until - self._monotonic()
            if left > 0:
                return left
        self._batch_until.pop(request.key, None)
        patch: JsonObject = {k: after.get(k) for k in changed}
        version = objects.resource_version(raw)
        body: JsonObject = {"status": patch}
        if commit_first:
            # A decision (restart, finish) made from a stale read must conflict, not happen twice.
            body["metadata"] = {"resourceVersion": version}
        await self.client.patch_status(TORCHJOBS, request.name, body, request.namespace)
        self.expectations.status_written(request.key, version)
        JobMetrics.accounted(request.namespace, queue, old, step.status)
        return None

    async def _allocate_ports(self, request: Request, raw: JsonObject, job: TorchJob) -> None:
        """Choose the job's host ports (:mod:`.ports`) and record them in its status before any worker exists;
        the write carries the resourceVersion they were chosen from, so two passes cannot choose twice."""
        uid = job.metadata.uid or ""
        ports = allocate(uid, taken_ports(self.jobs.list(copy=False), uid))
        version = objects.resource_version(raw)
        body: JsonObject = {"metadata": {"resourceVersion": version}, "status": {"ports": ports.to_k8s()}}
        await self.client.patch_status(TORCHJOBS, request.name, body, request.namespace)
        self.expectations.status_written(request.key, version)
        log.info(
            "torchjob %s: host network: rendezvous port %d allocated",
            request,
            ports.rendezvous,
            extra={"rendezvous_port": ports.rendezvous, "master_port": ports.master},
        )

    async def _dry_run(self, request: Request, step: Plan) -> Refusal | None:
        """A server-side dry run of the plan's first worker (index 0), if it creates one."""
        for action in step.actions:
            if not _is_pod_create(action):
                continue
            assert isinstance(action, CreateObject)
            labels: JsonObject = action.body["metadata"].get("labels") or {}
            if labels.get(REPLICA_INDEX_LABEL) != "0" or JOB_NAME_LABEL not in labels:
                continue
            name = str(action.body["metadata"]["name"])
            try:
                await self.client.create(PODS, action.body, request.namespace, dry_run=True)
            except AlreadyExists:
                return None
            except ApiError as err:
                if not 400 <= err.code < 500 or err.code == 429:
                    raise
                return Refusal("Pod", name, err.code, err.message or str(err), dry_run=True)
            log.debug("torchjob %s: dry run of %s admitted", request, name)
            return None
        return None

    async def _apply(
        self, request: Request, job: TorchJob, step: Plan, *, dry_run_first: bool = False
    ) -> Refusal | None:
        """Run the plan's actions in its order; each run of consecutive pod creates in slow-start batches,
        each run of consecutive pod deletes at once.

        Orders that matter (:mod:`.plan`): a PodGroup (the gang's, an elastic job's store's) is created before
        the pods that name it, the shared Service before the workers it names, an elastic job's store pod
        (first of its run, so alone in the first batch) before the workers that dial it; deletes of an older
        attempt's same-named pods come in plans that create nothing. Pod creates next to each other depend on
        nothing among themselves, nor do pod deletes (a gang restart stops every member, and one at a time
        its members would go at the apiserver's latency times the gang's size): only they run in parallel. A
        create the apiserver refuses (4xx) ends the pass and is returned (what depends on it cannot follow);
        any other error is raised, a run's once all of it has returned. `dry_run_first`:
        a new job's first worker is dry-run before any create (:mod:`.refusal`); admitted, it has vouched for
        the spec the way slow start's small batches would, so after the first create the rest go at once.
        """
        if dry_run_first and (refusal := await self._dry_run(request, step)) is not None:
            return refusal
        for verb, run in groupby(step.actions, key=_pod_verb):
            if verb == "create":
                creates = [a for a in run if isinstance(a, CreateObject)]
                refusal = await self._create_pods(request, creates, vetted=dry_run_first)
                if refusal is not None:
                    return refusal
                continue
            if verb == "delete":
                deletes = [a for a in run if isinstance(a, DeleteObject)]
                _, errors = await self._in_parallel(deletes, lambda a: self._act(request, job, a))
                if errors:
                    raise errors[0]
                continue
            for action in run:
                if (refusal := await self._act(request, job, action)) is not None:
                    return refusal
        return None

    async def _act(self, request: Request, job: TorchJob, action: Action) -> Refusal | None:
        ns = request.namespace
        match action:
            case CreateObject():
                return await self._create(request, action)
            case PatchPodGroup(name=name, patch=patch):
                await self.client.patch(PODGROUPS, name, patch, ns)
            case DeleteObject(kind=kind, name=name, uid=uid):
                try:
                    await self.client.delete(_KINDS[kind], name, ns, uid=uid, propagation_policy="Background")
                except NotFound:
                    return None
                self.expectations.deleted(request.key, kind, uid)
            case DeleteJob():
                log.info("torchjob %s: TTL after finish expired; deleting the job", request)
                with contextlib.suppress(NotFound):
                    await self.client.delete(
                        TORCHJOBS, request.name, ns, uid=job.metadata.uid, propagation_policy="Background"
                    )
        return None

    async def _create(self, request: Request, action: CreateObject) -> Refusal | None:
        """Create one object; expected in the cache only once the create succeeded. A 4xx answer other than
        AlreadyExists and 429 is returned as a :class:`Refusal`; other errors are raised."""
        kind, body = action.kind, action.body
        name = str(body["metadata"]["name"])
        try:
            await self.client.create(_KINDS[kind], body, request.namespace)
        except AlreadyExists:
            log.info("torchjob %s: %s %s already exists", request, kind, name)
            return None
        except ApiError as err:
            if not 400 <= err.code < 500 or err.code == 429:
                raise
            return Refusal(kind, name, err.code, err.message or str(err))
        if not (kind == "Service" and name == WORKERS_SERVICE):  # shared, owned by no job
            self.expectations.created(request.key, kind, name)
        if kind == "PodGroup":
            JobMetrics.gang_created(int(body["spec"].get("minMember", 0)))
        return None

    async def _create_pods(
        self, request: Request, creates: list[CreateObject], *, vetted: bool = False
    ) -> Refusal | None:
        """Pod creates in parallel batches of 1, 2, 4, ... (client-go's slowStartBatch), or, `vetted` by a
        dry run, the first alone and then all the rest: a gang is scheduled only once every member exists,
        and members created over several round trips meet the scheduler as a partial gang (Unschedulable
        status writes and Events for nothing). A batch with an error ends the run, the rest not attempted
        (what refused one, a quota or admission, likely refuses them all). Once every create of that batch
        returned, its first refusal is returned, or else its first other error raised."""
        done = 0
        sizes = vetted_batches(len(creates)) if vetted else slow_start(len(creates))
        for size in sizes:
            batch = creates[done : done + size]
            refusals, errors = await self._in_parallel(batch, lambda a: self._create(request, a))
            done += size
            if refusals or errors:
                failed = len(refusals) + len(errors)
                log.debug(
                    "torchjob %s: %d of %d pod creates in a batch failed; %d not attempted",
                    request,
                    failed,
                    size,
                    len(creates) - done,
                    extra={"failed": failed, "skipped": len(creates) - done},
                )
                if errors:
                    raise errors[0]
                return refusals[0]
        return None

    @staticmethod
    async def _in_parallel(
        batch: list[_A], act: Callable[[_A], Awaitable[Refusal | None]]
    ) -> tuple[list[Refusal], list[Exception]]:
        """Run `act` on every action of `batch` in parallel to its end; the refusals and the other errors, in
        the batch's order."""
        outcomes: list[Refusal | Exception | None] = [None] * len(batch)

        async def one(index: int, action: _A) -> None:
            try:
                outcomes[index] = await act(action)
            except Exception as err:  # kept: the batch's other actions must finish, not be cancelled
                outcomes[index] = err

        async with anyio.create_task_group() as tg:
            for index, action in enumerate(batch):
                tg.start_soon(one, index, action)
        refusals = [o for o in outcomes if isinstance(o, Refusal)]
        return refusals, [o for o in outcomes if isinstance(o, Exception)]

    def _record(
        self,
        job: TorchJob,
        old: TorchJobStatus,
        step: Plan,
        now: datetime,
        held_queued: datetime | None = None,
    ) -> None:
        """Metrics and Events of this pass; `held_queued`: since when an unwritten Queued was held."""
        new = step.status
        if new.phase == Phase.RUNNING and old.phase != Phase.RUNNING:
            queued = old.condition("Queued")
            JobMetrics.started_running(
                created=job.metadata.creation_timestamp,
                queued_since=queued.last_transition_time
                if queued is not None and queued.status == "True"
                else held_queued,
                first=old.condition("Running") is None,
                now=now,
            )
        JobMetrics.disruptions(old, new)
        if step.restart is not None:
            JobMetrics.restarted(step.restart)
        for event in step.events:
            if event.reason == REASON_RANK0_SUCCEEDED:
                stopped = sum(1 for a in step.actions if isinstance(a, DeleteObject) and a.kind == "Pod")
                log.info(
                    "torchjob %s/%s: %s",
                    job.metadata.namespace,
                    job.metadata.name,
                    event.message,
                    extra={"success_policy": "Rank0", "workers_stopped": stopped},
                )
            self._event(job, event, now)

    def _event(self, job: TorchJob, event: Event, now: datetime) -> None:
        """Record a core/v1 Event on the job: queued for the recorder, never waited for, never fatal."""
        meta = job.metadata
        ref = ObjectRef(
            api_version=job.api_version,
            kind=job.kind,
            namespace=meta.namespace or "",
            name=meta.name or "",
            uid=meta.uid,
            resource_version=meta.resource_version,
        )
        self.recorder.event(ref, event.type, event.reason, event.message, now=now)

# pyright: strict
"""TorchJob SDK: submit, list, get, describe, logs, wait, suspend, resume, delete, typed with `api.TorchJob`.

Async functions over the controller runtime's `Client` (`Client.connect(kubeconfig, context)`), and the
blocking `JobClient` with the same verbs. Errors are `controller.runtime.errors.ApiError`s or the
`pyroclast.errors.PyroclastError`s below, whose messages say what to do.

Logs go through the pods/log API (the kubelet of each worker's node, proxied by the apiserver).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from opentelemetry import trace
from opentelemetry.trace import Span
from pydantic import ValidationError

from api import TorchJob
from api.constants import LABEL_JOB_NAME, LABEL_REPLICA_INDEX, TRAINER_CONTAINER
from api.podgroup import PodGroup
from api.queue import QueueState
from api.runtime import RuntimeRecord
from controller.runtime import objects, tracing
from controller.runtime.client import Client
from controller.runtime.errors import AlreadyExists, Forbidden, NotFound, error_from_status
from controller.runtime.objects import JsonObject
from controller.runtime.resource import EVENTS, PODS
from controller.torchjob.kinds import PODGROUPS, PRIORITY_CLASSES, QUEUES, TORCHJOBS
from controller.torchjob.observe import observe_podgroup
from controller.torchjob.runtime import Unresolved, effective_job
from pyroclast.errors import EXIT_TIMEOUT, NotFoundError, PyroclastError, RefusedError
from pyroclast.jobspec import submit_manifest
from pyroclast.jobview import JobDetails, WaitFor, wait_outcome
from pyroclast.runtimes import effective_for_submit
from scheduling import podgroup_name

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("pyroclast.jobs")

T = TypeVar("T")

FIELD_MANAGER: Final = "pyroclast-cli"
SDK_SERVICE: Final = "pyroclast-sdk"
"""The OpenTelemetry service name of the blocking SDK's spans, unless OTEL_SERVICE_NAME says otherwise."""
DEFAULT_NAMESPACE: Final = "default"
WAIT_POLL: Final = 1.0


class UnknownQueueError(NotFoundError):
    """The job names a Volcano queue that does not exist: its PodGroup would wait forever."""

    def __init__(self, queue: str):
        super().__init__(
            f"queue {queue} does not exist, so the job would never be scheduled. Pick one from "
            f"`pyroclast queue list` (--queue), or ask an admin to `pyroclast queue create {queue}`"
        )
        self.queue = queue


class QueueClosedError(RefusedError):
    """The job's queue is Closed or Closing (draining): it admits no new jobs."""

    def __init__(self, queue: str, state: QueueState):
        super().__init__(
            f"queue {queue} is {state.value} and admits no new jobs. Submit to an Open queue "
            f"(`pyroclast queue list`), or ask its admin to `pyroclast queue open {queue}`"
        )
        self.queue = queue
        self.state = state


class NoPriorityClassError(NotFoundError):
    """The job names a PriorityClass that does not exist: the apiserver would refuse its pods."""

    def __init__(self, name: str):
        super().__init__(
            f"priority class {name} does not exist, so the job's pods would be refused. Pick one from "
            "`kubectl get priorityclasses` (--priority-class), or leave it out for the default priority"
        )
        self.name = name


class JobExistsError(RefusedError):
    """A TorchJob of that name is already in the namespace."""

    def __init__(self, namespace: str, name: str):
        super().__init__(
            f"TorchJob {name} already exists in namespace {namespace}. Pick another name, or delete it first "
            f"(`pyroclast job delete {name} -n {namespace}`)"
        )


class NoWorkerError(NotFoundError):
    """Logs were asked of a worker the job does not have (yet)."""


class WaitTimeoutError(PyroclastError):
    """`wait_job` gave up before the job got where it was waited for."""

    exit_code = EXIT_TIMEOUT

    def __init__(self, job: TorchJob, target: WaitFor, timeout: float):
        phase = job.status.phase.value if job.status and job.status.phase else "Pending"
        super().__init__(
            f"TorchJob {job.metadata.name} is still {phase} after {timeout:g}s (waiting for {target.value}); "
            f"see why with `pyroclast job describe {job.metadata.name} -n {job.metadata.namespace}`"
        )
        self.job = job


def job_not_found(namespace: str, name: str) -> str:
    """The message for a TorchJob that is not there."""
    return (
        f"TorchJob {name} not found in namespace {namespace}; "
        f"list jobs with `pyroclast job list -n {namespace}`"
    )


def _span(verb: str, namespace: str | None, name: str | None = None) -> AbstractContextManager[Span]:
    """One span per SDK verb; the Client's request spans nest under it."""
    attributes = {"k8s.namespace.name": namespace or "", "pyroclast.job": name or ""}
    return _tracer.start_as_current_span(
        f"pyroclast.job.{verb}", attributes={k: v for k, v in attributes.items() if v}
    )


def _missing_job(exc: NotFound, namespace: str, name: str) -> Exception:
    """A NotFoundError with the fix when the 404 is about the TorchJob itself; else `exc` as it came."""
    details: JsonObject = exc.status.get("details") or {}
    return NotFoundError(job_not_found(namespace, name)) if details.get("kind") == "torchjobs" else exc


class JobModelError(PyroclastError):
    """A TorchJob the apiserver holds that this client's models refuse (a newer or older API)."""


def _job(obj: JsonObject) -> TorchJob:
    """The job as it runs: a job resolved against a runtime shows the merged spec (what its pods get)."""
    return _stored(_effective(obj))


def _effective(obj: JsonObject) -> JsonObject:
    status: JsonObject = obj.get("status") or {}
    spec: JsonObject = obj.get("spec") or {}
    record: object = status.get("runtime")
    if not spec.get("runtimeRef") or not record:
        return obj
    try:
        return effective_job(obj, RuntimeRecord.model_validate(record))
    except (Unresolved, ValidationError):  # refused since (a locked field set): show the job as stored
        return obj


def _stored(obj: JsonObject) -> TorchJob:
    try:
        return TorchJob.from_k8s(obj)
    except ValidationError as exc:
        meta = objects.metadata(obj)
        raise JobModelError(
            f"TorchJob {meta.get('namespace')}/{meta.get('name')} does not match this client's API "
            f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}); use a pyroclast release "
            "matching the operator's CRD"
        ) from None


async def _get_job(client: Client, name: str, namespace: str) -> TorchJob:
    try:
        return _job(await client.get(TORCHJOBS, name, namespace))
    except NotFound as exc:
        raise _missing_job(exc, namespace, name) from None


# ---- submit ---------------------------------------------------------------------------------------------


async def check_admission(client: Client, job: TorchJob) -> None:
    """What the apiserver would accept but the job could never get past: an unknown or closed queue, a
    missing priority class. Checks the caller may not read (403) are skipped, not failed."""
    sched = job.spec.scheduling
    try:
        queue = await client.get(QUEUES, sched.queue)
    except NotFound:
        raise UnknownQueueError(sched.queue) from None
    except Forbidden:
        log.info("cannot read queue %s (RBAC); skipping the queue check", sched.queue)
    else:
        status: JsonObject = queue.get("status") or {}
        state = status.get("state")
        if state in (QueueState.CLOSED, QueueState.CLOSING):
            raise QueueClosedError(sched.queue, QueueState(state))
    if sched.priority_class_name:
        try:
            await client.get(PRIORITY_CLASSES, sched.priority_class_name)
        except NotFound:
            raise NoPriorityClassError(sched.priority_class_name) from None
        except Forbidden:
            log.info("cannot read priority class %s (RBAC); skipping its check", sched.priority_class_name)


async def submit_job(
    client: Client, job: TorchJob, namespace: str | None = None, *, check: bool = True, dry_run: bool = False
) -> TorchJob:
    """Create `job` in `namespace` (else its own, else `default`) and return it as the apiserver holds it.

    With `check`, refuses first what could never run (`check_admission`). `dry_run` asks the apiserver to
    validate and default without storing. Raises JobExistsError, UnknownQueueError, QueueClosedError,
    NoPriorityClassError, or the apiserver's Invalid (a field and its fix) and Forbidden.
    """
    ns = namespace or job.metadata.namespace or DEFAULT_NAMESPACE
    with _span("submit", ns, job.metadata.name):
        if check:  # as the job's runtime makes it: its queue and priority class, its locked fields
            await check_admission(client, await effective_for_submit(client, job, ns))
        manifest = submit_manifest(job, ns)
        if not dry_run:
            tracing.carry_current(manifest)  # the operator's reconciles of the job join this trace
        try:
            if dry_run:
                created = await _dry_run_create(client, manifest, ns)
            else:
                created = await client.create(TORCHJOBS, manifest, ns, field_manager=FIELD_MANAGER)
        except AlreadyExists:
            raise JobExistsError(ns, job.metadata.name or "") from None
        log.info("submitted TorchJob %s/%s", ns, created["metadata"]["name"])
        return _job(created)


async def _dry_run_create(client: Client, manifest: JsonObject, namespace: str) -> JsonObject:
    resp = await client.transport.request(
        "POST",
        TORCHJOBS.path(namespace),
        params={"dryRun": "All", "fieldManager": FIELD_MANAGER},
        body=json.dumps(manifest).encode(),
        content_type="application/json",
        request_timeout=client.timeout,
    )
    if resp.status >= 400:
        raise error_from_status(resp.status, resp.body)
    return json.loads(resp.body)


# ---- read -----------------------------------------------------------------------------------------------


async def get_job(client: Client, name: str, namespace: str = DEFAULT_NAMESPACE) -> TorchJob:
    """The TorchJob `namespace/name`; raises NotFoundError."""
    with _span("get", namespace, name):
        return await _get_job(client, name, namespace)


async def list_jobs(
    client: Client, namespace: str | None = DEFAULT_NAMESPACE, *, queue: str | None = None
) -> list[TorchJob]:
    """TorchJobs of `namespace` (every namespace when None), optionally only those in `queue`, sorted."""
    with _span("list", namespace):
        items = (await client.list(TORCHJOBS, namespace)).items
        jobs = [_job(o) for o in items]
        if queue is not None:
            jobs = [j for j in jobs if j.spec.scheduling.queue == queue]
        return sorted(jobs, key=lambda j: (j.metadata.namespace or "", j.metadata.name or ""))


async def worker_pods(client: Client, job: TorchJob) -> list[JsonObject]:
    """The job's worker pods, by index."""
    pods = await client.list(
        PODS, job.metadata.namespace, label_selector={LABEL_JOB_NAME: job.metadata.name or ""}
    )
    return sorted(pods.items, key=_index)


def _index(pod: JsonObject) -> int:
    labels = objects.labels(pod)
    try:
        return int(labels.get(LABEL_REPLICA_INDEX, ""))
    except ValueError:
        return -1


async def describe_job(client: Client, name: str, namespace: str = DEFAULT_NAMESPACE) -> JobDetails:
    """The job, its PodGroup and what the scheduler says about it, its worker pods, and the Events of all."""
    with _span("describe", namespace, name):
        job = await _get_job(client, name, namespace)
        pg_name = (job.status.pod_group_name if job.status else None) or podgroup_name(job)
        try:
            raw_pg: JsonObject | None = await client.get(PODGROUPS, pg_name, namespace)
        except NotFound:
            raw_pg = None
        uids = [job.metadata.uid or ""]
        if raw_pg is not None:
            uids.append(str(objects.metadata(raw_pg).get("uid", "")))
        events: list[JsonObject] = []
        for uid in uids:
            events += (await client.list(EVENTS, namespace, field_selector=f"involvedObject.uid={uid}")).items
        return JobDetails(
            job=job,
            podgroup=PodGroup.model_validate(raw_pg) if raw_pg is not None else None,
            gang=observe_podgroup(raw_pg, events) if raw_pg is not None else None,
            workers=await worker_pods(client, job),
            events=events,
        )


# ---- logs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line a worker's trainer container wrote."""

    worker: int
    pod: str
    text: str


def _log_params(*, follow: bool, tail: int | None, timestamps: bool, previous: bool) -> dict[str, str]:
    params = {"container": TRAINER_CONTAINER}
    if follow:
        params["follow"] = "true"
    if tail is not None:
        params["tailLines"] = str(tail)
    if timestamps:
        params["timestamps"] = "true"
    if previous:
        params["previous"] = "true"
    return params


async def pod_log_lines(
    client: Client,
    pod: str,
    namespace: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    timestamps: bool = False,
    previous: bool = False,
) -> AsyncIterator[str]:
    """The trainer container's log of `pod`, line by line; with `follow`, until the container ends.

    The apiserver proxies this from the node's kubelet; a node without one (kwok) answers 5xx, a pod not
    yet on a node 400, both raised as the typed ApiError with the apiserver's message.
    """
    path = PODS.path(namespace, pod, "log")
    params = _log_params(follow=follow, tail=tail, timestamps=timestamps, previous=previous)
    if not follow:
        resp = await client.transport.request("GET", path, params=params, request_timeout=client.timeout)
        if resp.status >= 400:
            raise error_from_status(resp.status, resp.body)
        for line in resp.body.decode("utf-8", "replace").splitlines():
            yield line
        return
    async with client.transport.stream("GET", path, params=params, request_timeout=None) as stream:
        if stream.status >= 400:
            raise error_from_status(stream.status, await stream.read())
        async for raw in stream.lines():
            yield raw.decode("utf-8", "replace")


async def job_logs(
    client: Client,
    name: str,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    worker: int | None = None,
    follow: bool = False,
    tail: int | None = None,
    timestamps: bool = False,
    previous: bool = False,
    on_error: Callable[[int, str, Exception], None] | None = None,
) -> AsyncIterator[LogLine]:
    """Log lines of one worker (`worker`), or of every worker merged as they arrive.

    Merged, a worker whose log cannot be read is reported to `on_error(index, pod, error)` and the others go
    on; without `on_error` (or for a single worker) the error is raised. Raises NoWorkerError when the job
    has no such worker (or no workers yet).
    """
    job = await _get_job(client, name, namespace)
    pods = await worker_pods(client, job)
    if worker is not None:
        pods = [p for p in pods if _index(p) == worker]
    if not pods:
        which = f"worker {worker}" if worker is not None else "worker pods"
        raise NoWorkerError(
            f"TorchJob {name} has no {which} now (phase {job.status.phase if job.status else 'Pending'}); "
            f"see `pyroclast job describe {name} -n {namespace}`"
        )
    kwargs: dict[str, Any] = {"follow": follow, "tail": tail, "timestamps": timestamps, "previous": previous}
    if len(pods) == 1:
        pod = pods[0]["metadata"]["name"]
        async for text in pod_log_lines(client, pod, namespace, **kwargs):
            yield LogLine(_index(pods[0]), pod, text)
        return
    send, receive = anyio.create_memory_object_stream[LogLine](256)

    async def pump(index: int, pod: str, out: MemoryObjectSendStream[LogLine]) -> None:
        async with out:
            try:
                async for text in pod_log_lines(client, pod, namespace, **kwargs):
                    await out.send(LogLine(index, pod, text))
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(index, pod, exc)

    async with anyio.create_task_group() as tg, receive:
        async with send:
            for p in pods:
                tg.start_soon(pump, _index(p), p["metadata"]["name"], send.clone())
        async for line in receive:
            yield line


# ---- wait -----------------------------------------------------------------------------------------------


async def watch_job(
    client: Client, name: str, namespace: str = DEFAULT_NAMESPACE, *, poll: float = WAIT_POLL
) -> AsyncIterator[TorchJob]:
    """The job as it changes (one read per `poll` seconds; unchanged readings are skipped)."""
    last = None
    while True:
        job = await _get_job(client, name, namespace)
        if job.metadata.resource_version != last:
            last = job.metadata.resource_version
            yield job
        await anyio.sleep(poll)


async def wait_job(
    client: Client,
    name: str,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    until: WaitFor = WaitFor.FINISHED,
    within: float | None = None,
    poll: float = WAIT_POLL,
    on_change: Callable[[TorchJob], None] | None = None,
) -> tuple[TorchJob, int]:
    """Wait until the job is Running (`until=running`) or finished; returns it and the exit code
    (0 reached, 5 failed). Raises WaitTimeoutError after `within` seconds, NotFoundError when it is
    deleted meanwhile. `on_change` sees every new reading (for a progress display)."""
    job: TorchJob | None = None
    with _span("wait", namespace, name), anyio.move_on_after(within):
        async for job in watch_job(client, name, namespace, poll=poll):
            if on_change is not None:
                on_change(job)
            if (code := wait_outcome(job, until)) is not None:
                return job, code
    if job is None:  # the first read never came back in time
        job = await _get_job(client, name, namespace)
    raise WaitTimeoutError(job, until, within or 0.0)


# ---- change ---------------------------------------------------------------------------------------------


async def _set_suspend(client: Client, name: str, namespace: str, suspend: bool) -> TorchJob:
    patch = {"spec": {"runPolicy": {"suspend": suspend}}}
    try:
        return _job(await client.patch(TORCHJOBS, name, patch, namespace, field_manager=FIELD_MANAGER))
    except NotFound as exc:
        raise _missing_job(exc, namespace, name) from None


async def suspend_job(client: Client, name: str, namespace: str = DEFAULT_NAMESPACE) -> TorchJob:
    """Suspend: the operator deletes the pods and the PodGroup (freeing the queue's quota)."""
    with _span("suspend", namespace, name):
        return await _set_suspend(client, name, namespace, True)


async def resume_job(client: Client, name: str, namespace: str = DEFAULT_NAMESPACE) -> TorchJob:
    """Resume a suspended job: the operator recreates its PodGroup and pods (it queues again)."""
    with _span("resume", namespace, name):
        return await _set_suspend(client, name, namespace, False)


async def delete_job(client: Client, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
    """Delete the job; the garbage collector removes its pods, PodGroup and Service after it."""
    with _span("delete", namespace, name):
        try:
            await client.delete(TORCHJOBS, name, namespace, propagation_policy="Background")
        except NotFound as exc:
            raise _missing_job(exc, namespace, name) from None


# ---- sync wrapper ---------------------------------------------------------------------------------------


class JobClient:
    """The same verbs, blocking: each call connects, runs the async function and returns its result.

    >>> jobs = JobClient("~/.kube/config", namespace="research")
    >>> jobs.submit(build_job("ft", image="ghcr.io/x/train:1", command=["-m", "train"]))
    >>> jobs.wait("ft").status.phase
    """

    def __init__(
        self,
        kubeconfig: str | Path | None = None,
        context: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ):
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace
        # The standard OTEL_* variables export the SDK's spans (unless the application set up its own).
        tracing.configure_from_env(service_name=SDK_SERVICE)

    def _run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        async def go() -> T:
            return await fn(await Client.connect(self.kubeconfig, self.context))

        return anyio.run(go)

    def submit(self, job: TorchJob, *, check: bool = True, dry_run: bool = False) -> TorchJob:
        """See `submit_job`; the job's own namespace wins over the client's."""
        ns = job.metadata.namespace or self.namespace
        return self._run(lambda c: submit_job(c, job, ns, check=check, dry_run=dry_run))

    def get(self, name: str) -> TorchJob:
        """See `get_job`."""
        return self._run(lambda c: get_job(c, name, self.namespace))

    def list(self, *, all_namespaces: bool = False, queue: str | None = None) -> list[TorchJob]:
        """See `list_jobs`."""
        return self._run(lambda c: list_jobs(c, None if all_namespaces else self.namespace, queue=queue))

    def describe(self, name: str) -> JobDetails:
        """See `describe_job`."""
        return self._run(lambda c: describe_job(c, name, self.namespace))

    def logs(self, name: str, *, worker: int | None = None, tail: int | None = None) -> list[LogLine]:
        """The log lines so far (no follow; iterate `job_logs` in async code to follow)."""

        async def collect(c: Client) -> list[LogLine]:
            return [line async for line in job_logs(c, name, self.namespace, worker=worker, tail=tail)]

        return self._run(collect)

    def wait(self, name: str, *, until: WaitFor = WaitFor.FINISHED, timeout: float | None = None) -> TorchJob:
        """See `wait_job`; returns the job (check `status.phase`)."""
        return self._run(lambda c: wait_job(c, name, self.namespace, until=until, within=timeout))[0]

    def suspend(self, name: str) -> TorchJob:
        """See `suspend_job`."""
        return self._run(lambda c: suspend_job(c, name, self.namespace))

    def resume(self, name: str) -> TorchJob:
        """See `resume_job`."""
        return self._run(lambda c: resume_job(c, name, self.namespace))

    def delete(self, name: str) -> None:
        """See `delete_job`."""
        self._run(lambda c: delete_job(c, name, self.namespace))


__all__ = [
    "JobClient",
    "JobExistsError",
    "JobModelError",
    "LogLine",
    "NoPriorityClassError",
    "NoWorkerError",
    "QueueClosedError",
    "UnknownQueueError",
    "WaitTimeoutError",
    "check_admission",
    "delete_job",
    "describe_job",
    "get_job",
    "job_logs",
    "list_jobs",
    "resume_job",
    "submit_job",
    "suspend_job",
    "wait_job",
    "watch_job",
]

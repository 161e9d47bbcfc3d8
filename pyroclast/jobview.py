# pyright: strict
"""How `pyroclast job` shows TorchJobs: list rows, describe text, wait progress and outcome (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from api import ConditionStatus, ConditionType, Phase, PodGroup, TorchJob, TorchJobSpec
from controller.runtime.objects import JsonObject
from controller.torchjob.observe import GangState
from pyroclast.errors import EXIT_JOB_FAILED, EXIT_OK
from pyroclast.jobspec import GPU
from scheduling.queues import format_table

BAR_WIDTH: Final = 20
WAITING_PHASES: Final = frozenset({"Pending", "Queued", "Preempted"})
"""Phases in which the gang waits for the scheduler (a preempted job waits to be admitted again)."""


def age(since: datetime | None, now: datetime) -> str:
    """kubectl's short age: `45s`, `12m`, `3h4m`, `2d`; `<unknown>` without a time."""
    if since is None:
        return "<unknown>"
    seconds = max(int((now - since).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 24:
        return f"{hours}h{minutes % 60}m" if hours < 6 and minutes % 60 else f"{hours}h"
    return f"{hours // 24}d"


def span(seconds: float) -> str:
    """A duration as :func:`age` writes one: `45s`, `12m`, `3h4m`, `2d`."""
    return age(datetime.min, datetime.min + timedelta(seconds=seconds))


def usage_of(job: TorchJob) -> str | None:
    """The usage line of `job describe`: resource-hours and cost, as of the last status write."""
    usage = job.status.usage if job.status else None
    if usage is None:
        return None
    text = (
        f"{usage.gpu_seconds / 3600:.2f} GPU-h, {usage.cpu_seconds / 3600:.2f} CPU-h, "
        f"{usage.memory_gi_b_seconds / 3600:.2f} GiB-h memory"
    )
    text += (
        f"; cost {usage.cost:.2f} {usage.currency}" if usage.cost is not None else "; cost - (no rates set)"
    )
    return f"{text} (as of {usage.updated_time})"


def goodput_of(job: TorchJob) -> str | None:
    """The goodput line of `job describe`: the productive share of the held time, the lost time by cause."""
    goodput = job.status.goodput if job.status else None
    if goodput is None or goodput.percent is None:
        return None
    lost = goodput.lost
    return (
        f"{goodput.percent:.1f}% of {span(goodput.held_seconds)} held: {span(goodput.productive_seconds)} "
        f"productive; lost {span(lost.queued_seconds)} queued, {span(lost.restarting_seconds)} restarting, "
        f"{span(lost.preempted_seconds)} preempted, {span(lost.recomputed_seconds)} recomputing "
        f"{goodput.recomputed_steps} step(s)"
    )


def phase_of(job: TorchJob) -> str:
    """The phase, or `Pending` before the operator wrote one."""
    return job.status.phase.value if job.status and job.status.phase else Phase.PENDING.value


def nproc_of(job: TorchJob) -> str:
    """Processes per node as torchrun will start them: `gpu` and `auto` resolve to the trainer's
    nvidia.com/gpu limit when it has one (torchrun counts the GPUs it sees); `cpu` is the node's CPU count,
    known only there."""
    nproc = job.spec.nproc_per_node
    if isinstance(nproc, int):
        return str(nproc)
    resources = job.spec.resources
    limits = (resources.limits if resources is not None else None) or {}
    gpus = limits.get(GPU)
    if nproc in ("gpu", "auto") and gpus is not None and str(gpus) not in ("", "0"):
        return f"{gpus} (nprocPerNode {nproc}: one per GPU)"
    if nproc == "gpu":
        return "gpu (one per GPU the node's trainer sees; no nvidia.com/gpu limit set)"
    return f"{nproc} (one per {'GPU, else CPU' if nproc == 'auto' else 'CPU'} of the node)"


def nodes_of(job: TorchJob) -> str:
    """`ready/desired` worker pods (desired from the spec before the operator reported it)."""
    status = job.status
    desired = status.desired_nodes if status and status.desired_nodes is not None else job.spec.nodes.count
    return f"{(status.ready_nodes or 0) if status else 0}/{desired}"


def progress_of(job: TorchJob) -> str:
    """`1200/20000` steps, `1200` without a total, `-` before the workload reported any."""
    progress = job.status.progress if job.status else None
    if progress is None:
        return "-"
    return f"{progress.step}/{progress.total_steps}" if progress.total_steps else str(progress.step)


@dataclass(frozen=True, slots=True)
class JobRow:
    """One line of `pyroclast job list`."""

    namespace: str
    name: str
    phase: str
    nodes: str
    queue: str
    restarts: str
    progress: str
    age: str

    def as_dict(self) -> JsonObject:
        """The row as JSON."""
        return {k: getattr(self, k) for k in self.__slots__}


def job_row(job: TorchJob, now: datetime) -> JobRow:
    """The list row of `job`; restarts are `failures/preemptions`."""
    status = job.status
    return JobRow(
        namespace=job.metadata.namespace or "",
        name=job.metadata.name or "",
        phase=phase_of(job),
        nodes=nodes_of(job),
        queue=job.spec.scheduling.queue,
        restarts=f"{status.failure_restarts}/{status.preemption_restarts}" if status else "0/0",
        progress=progress_of(job),
        age=age(job.metadata.creation_timestamp, now),
    )


LIST_HEADER: Final = ("name", "phase", "nodes", "queue", "restarts", "progress", "age")


def jobs_table(jobs: Iterable[TorchJob], now: datetime, *, all_namespaces: bool = False) -> str:
    """The `job list` table (with a NAMESPACE column across namespaces)."""
    rows = [job_row(j, now) for j in jobs]
    header = ("namespace", *LIST_HEADER) if all_namespaces else LIST_HEADER
    cells = (
        ((r.namespace,) if all_namespaces else ())
        + (r.name, r.phase, r.nodes, r.queue, r.restarts, r.progress, r.age)
        for r in rows
    )
    return format_table(header, cells)


# ---- describe -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobDetails:
    """Everything `job describe` shows: the job, its PodGroup and what the scheduler says, pods, events."""

    job: TorchJob
    podgroup: PodGroup | None = None
    gang: GangState | None = None
    workers: list[JsonObject] = field(default_factory=list[JsonObject])
    events: list[JsonObject] = field(default_factory=list[JsonObject])

    @property
    def scheduler_reason(self) -> str | None:
        """Why the gang waits, when it does (None once it runs)."""
        if phase_of(self.job) not in WAITING_PHASES or self.gang is None:
            return None
        return self.gang.summary


def _fields(pairs: Sequence[tuple[str, object]], indent: str = "") -> list[str]:
    width = max(len(k) for k, _ in pairs) + 1
    return [f"{indent}{k + ':':<{width}} {v}" for k, v in pairs]


def _when(value: object) -> datetime | None:
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """When an Event (core/v1) last happened."""
    return _when(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp"))


def _worker_line(pod: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta: Mapping[str, Any] = pod.get("metadata") or {}
    status: Mapping[str, Any] = pod.get("status") or {}
    spec: Mapping[str, Any] = pod.get("spec") or {}
    statuses: list[Mapping[str, Any]] = status.get("containerStatuses") or []
    exit_codes: list[str] = []
    for cs in statuses:
        state: Mapping[str, Any] = cs.get("state") or {}
        if (terminated := state.get("terminated")) is not None:
            exit_codes.append(str(terminated.get("exitCode")))
    return (
        str(meta.get("name", "")),
        str(status.get("phase") or "Pending") + (" (deleting)" if meta.get("deletionTimestamp") else ""),
        str(spec.get("nodeName") or "-"),
        ",".join(exit_codes) or "-",
    )


def _event_row(event: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
    involved: Mapping[str, Any] = event.get("involvedObject") or {}
    source: Mapping[str, Any] = event.get("source") or {}
    return (
        str(event.get("type", "")),
        str(event.get("reason", "")),
        age(event_time(event), now),
        str(source.get("component") or event.get("reportingComponent") or "-"),
        f"{involved.get('kind', '')}/{involved.get('name', '')}",
        str(event.get("message", "")),
    )


def _placement_and_success(spec: TorchJobSpec) -> list[tuple[str, object]]:
    """The network topology and a success policy other than the default, only where the job sets them."""
    lines: list[tuple[str, object]] = []
    if (topology := spec.scheduling.network_topology) is not None:
        tier = topology.highest_tier_allowed
        lines.append(("Network topology", topology.mode + (f", up to HyperNode tier {tier}" if tier else "")))
    if spec.success_policy == "Rank0":
        lines.append(("Success policy", "Rank0 (worker 0's exit decides; the others are stopped)"))
    return lines


def runtime_of(job: TorchJob) -> str:
    """`ClusterTorchRuntime/a100-ib (generation 3, hash ...)` once resolved; the reference before; `-`."""
    record = job.status.runtime if job.status is not None else None
    if record is not None:
        return f"{record.kind}/{record.name} (generation {record.generation}, hash {record.hash})"
    ref = job.spec.runtime_ref
    return f"{ref.kind}/{ref.name} (not resolved yet)" if ref is not None else "-"


def describe_text(details: JobDetails, now: datetime) -> str:
    """The `job describe` report."""
    job, status = details.job, details.job.status
    spec = job.spec
    nodes = spec.nodes
    pairs: list[tuple[str, object]] = [
        ("Name", job.metadata.name),
        ("Namespace", job.metadata.namespace),
        (
            "Created",
            f"{job.metadata.creation_timestamp} ({age(job.metadata.creation_timestamp, now)} ago)",
        ),
        ("Image", spec.image or "(from the runtime)"),
        ("Runtime", runtime_of(job)),
        ("Command", " ".join([*spec.command, *(spec.args or [])])),
        (
            "Nodes",
            f"{nodes.count} (elastic {nodes.min}..{nodes.max})" if nodes.min is not None else nodes.count,
        ),
        ("Processes/node", nproc_of(job)),
        ("Queue", spec.scheduling.queue),
        ("Priority class", spec.scheduling.priority_class_name or "-"),
        ("Preemptible", "yes" if spec.scheduling.preemptible else "no"),
        *_placement_and_success(spec),
        ("Suspended", "yes" if spec.run_policy.suspend else "no"),
        ("Phase", phase_of(job)),
        ("Ready/desired", nodes_of(job)),
        ("World size", (status.world_size if status else None) or "-"),
        ("Progress", progress_of(job)),
        (
            "Restarts",
            f"{status.failure_restarts if status else 0} failure(s) "
            f"(max {spec.failure_policy.max_failure_restarts}), "
            f"{status.preemption_restarts if status else 0} preemption(s) "
            f"(max {spec.failure_policy.max_preemption_restarts})",
        ),
    ]
    pairs += [(k, v) for k, v in (("Goodput", goodput_of(job)), ("Usage", usage_of(job))) if v is not None]
    if status and status.last_disruption_reason:
        pairs.append(("Last disruption", f"{status.last_disruption_reason} at {status.last_disruption_time}"))
    if status and status.last_checkpoint:
        ckpt = status.last_checkpoint
        pairs.append(("Last checkpoint", f"step {ckpt.step} at {ckpt.path or '-'} ({ckpt.time})"))
    if (reason := details.scheduler_reason) is not None:
        pairs.append(("Scheduler", reason))
    refused = status.condition(ConditionType.CREATE_FAILED) if status else None
    if refused is not None and refused.status == ConditionStatus.TRUE:
        pairs.append(("Create refused", f"{refused.message} (retried with backoff; fix the cause)"))
    lines = _fields(pairs)
    lines += ["", "Conditions:"]
    conditions = (status.conditions if status else None) or []
    if conditions:
        table = format_table(
            ("type", "status", "reason", "age", "message"),
            (
                (c.type, c.status.value, c.reason, age(c.last_transition_time, now), c.message)
                for c in conditions
            ),
        )
        lines += ["  " + ln for ln in table.splitlines()]
    else:
        lines.append("  <none>")
    lines += ["", "PodGroup:"]
    pg = details.podgroup
    if pg is None:
        lines.append("  <none> (created when the job is admitted; deleted when it finishes or is suspended)")
    else:
        pg_status = pg.status
        lines += _fields(
            [
                ("Name", pg.metadata.name),
                ("Phase", (pg_status.phase.value if pg_status and pg_status.phase else "Pending")),
                ("Min member", pg.spec.min_member),
                (
                    "Min resources",
                    ", ".join(f"{k}={v}" for k, v in (pg.spec.min_resources or {}).items()) or "-",
                ),
                ("Queue", pg.spec.queue),
                (
                    "Pods",
                    f"{(pg_status.running if pg_status else 0) or 0} running, "
                    f"{(pg_status.succeeded if pg_status else 0) or 0} succeeded, "
                    f"{(pg_status.failed if pg_status else 0) or 0} failed",
                ),
            ],
            indent="  ",
        )
    lines += ["", "Workers:"]
    if details.workers:
        table = format_table(("pod", "phase", "node", "exit"), (_worker_line(p) for p in details.workers))
        lines += ["  " + ln for ln in table.splitlines()]
    else:
        lines.append("  <none>")
    lines += ["", "Events:"]
    if details.events:
        earliest = datetime.min.replace(tzinfo=now.tzinfo)
        ordered = sorted(details.events, key=lambda e: event_time(e) or earliest)
        header = ("type", "reason", "age", "from", "object", "message")
        table = format_table(header, (_event_row(e, now) for e in ordered))
        lines += ["  " + ln for ln in table.splitlines()]
    else:
        lines.append("  <none>")
    return "\n".join(lines)


# ---- wait -----------------------------------------------------------------------------------------------


class WaitFor(StrEnum):
    """What `job wait` waits for."""

    RUNNING = "running"
    FINISHED = "finished"


def wait_outcome(job: TorchJob, target: WaitFor) -> int | None:
    """The exit code once `job` settles what `target` waits for (0 reached, 5 failed); None: keep waiting.

    Waiting for `running` ends too when the job finishes first (Succeeded counts as reached).
    """
    phase = job.status.phase if job.status else None
    if phase == Phase.FAILED:
        return EXIT_JOB_FAILED
    if phase == Phase.SUCCEEDED:
        return EXIT_OK
    if target is WaitFor.RUNNING and phase == Phase.RUNNING:
        return EXIT_OK
    return None


def bar(step: int, total: int, width: int = BAR_WIDTH) -> str:
    """`[#######-------------]  35%`."""
    frac = min(max(step / total, 0.0), 1.0) if total > 0 else 0.0
    filled = round(frac * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {frac * 100:3.0f}%"


def state_line(job: TorchJob, *, with_bar: bool = False) -> str:
    """One line about where the job is: phase, nodes, restarts, progress (and a bar on a terminal)."""
    status = job.status
    parts = [f"{job.metadata.name}: {phase_of(job)}", f"nodes {nodes_of(job)}"]
    if status and (status.failure_restarts or status.preemption_restarts):
        parts.append(f"restarts {status.failure_restarts} failure/{status.preemption_restarts} preemption")
    progress = status.progress if status else None
    if progress is not None:
        step = f"step {progress_of(job)}"
        if with_bar and progress.total_steps:
            step += " " + bar(progress.step, progress.total_steps)
        parts.append(step)
        if progress.loss is not None:
            parts.append(f"loss {progress.loss:.4g}")
    condition = status.condition(phase_of(job)) if status else None
    if condition is not None and condition.message and phase_of(job) != Phase.RUNNING:
        parts.append(condition.message)
    return "  ".join(parts)


def change_key(job: TorchJob) -> tuple[object, ...]:
    """What must differ for a plain (non-terminal) `wait` to print a new line: not every step."""
    status = job.status
    if status is None:
        return ()
    condition = status.condition(phase_of(job))
    return (
        status.phase,
        status.ready_nodes,
        status.desired_nodes,
        status.failure_restarts,
        status.preemption_restarts,
        condition.message if condition else None,
    )


# ---- logs -----------------------------------------------------------------------------------------------


def worker_prefix(index: int) -> str:
    """The prefix of worker `index`'s lines when all workers' logs are merged (node rank = index)."""
    return f"[worker-{index}] "


__all__ = [
    "JobDetails",
    "JobRow",
    "WaitFor",
    "age",
    "bar",
    "change_key",
    "describe_text",
    "job_row",
    "jobs_table",
    "state_line",
    "wait_outcome",
    "worker_prefix",
]

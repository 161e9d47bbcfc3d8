"""Volcano queue administration, the pure half: Queue objects from flags or YAML, apply diffs, list rows.

Nothing here talks to the cluster; `pyroclast.queues` does the I/O and calls these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import yaml
from pydantic import ValidationError

from api.meta import ObjectMeta
from api.problems import problems
from api.quantity import parse_quantity
from api.queue import Queue, QueueSpec
from api.status import Phase
from controller.runtime.objects import JsonObject
from scheduling.resources import display_quantity

# Spec fields `apply` and `update` manage. `parent` is compared only when the desired queue names one: the
# queue-controller writes `parent: root` onto every queue created without it (volcano.md section 2).
MANAGED_FIELDS: Final = ("weight", "capability", "guarantee", "deserved", "reclaimable", "parent", "priority")
RUNNING_PHASES: Final = frozenset({Phase.RUNNING, Phase.RESTARTING})
PENDING_PHASES: Final = frozenset({Phase.PENDING, Phase.QUEUED, Phase.PREEMPTED, Phase.CREATE_FAILED})


class QueueSpecError(ValueError):
    """A queue definition (flag or YAML document) that cannot become a Queue; the message names the field."""


def parse_resources(items: Iterable[str], flag: str) -> dict[str, str]:
    """`["cpu=8,memory=32Gi", "nvidia.com/gpu=4"]` -> `{"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4"}`.

    Each item is one or more comma-separated `NAME=QUANTITY` pairs; a later pair for a name wins.
    """
    out: dict[str, str] = {}
    for item in items:
        for pair in item.split(","):
            pair = pair.strip()
            if not pair:
                continue
            name, sep, value = pair.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not name or not value:
                raise QueueSpecError(f"{flag}: {pair!r} is not NAME=QUANTITY (e.g. {flag} nvidia.com/gpu=8)")
            try:
                parse_quantity(value)
            except ValueError:
                raise QueueSpecError(
                    f"{flag}: {value!r} for {name} is not a quantity (use e.g. 8, 500m or 64Gi)"
                ) from None
            out[name] = value
    return out


def build_queue(
    name: str,
    *,
    weight: int | None = None,
    capability: Mapping[str, str] | None = None,
    guarantee: Mapping[str, str] | None = None,
    deserved: Mapping[str, str] | None = None,
    reclaimable: bool | None = None,
    parent: str | None = None,
    priority: int | None = None,
) -> Queue:
    """A Queue from command-line values; unset values stay unset (Volcano's defaults apply)."""
    spec: JsonObject = {}
    if weight is not None:
        spec["weight"] = weight
    if capability:
        spec["capability"] = dict(capability)
    if guarantee:
        spec["guarantee"] = {"resource": dict(guarantee)}
    if deserved:
        spec["deserved"] = dict(deserved)
    if reclaimable is not None:
        spec["reclaimable"] = reclaimable
    if parent is not None:
        spec["parent"] = parent
    if priority is not None:
        spec["priority"] = priority
    return queue_from_dict({"metadata": {"name": name}, "spec": spec}, where=f"queue {name}")


def queue_from_dict(doc: Mapping[str, Any], *, where: str = "queue") -> Queue:
    """Validate one Queue document; errors name the field path and what is wrong with it."""
    if not isinstance(doc.get("metadata"), Mapping) or not doc["metadata"].get("name"):
        raise QueueSpecError(f"{where}: metadata.name is required")
    try:
        return Queue.model_validate({k: v for k, v in doc.items() if k != "status"})
    except ValidationError as exc:
        raise QueueSpecError(f"{where}: {problems(exc)}") from None


def queues_from_yaml(text: str, *, source: str = "<input>") -> list[Queue]:
    """Every Queue in a (multi-document) YAML text. A `List` document's items count; empty documents do not.

    Documents of another kind are refused rather than skipped, so a typo never silently applies nothing.
    """
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise QueueSpecError(f"{source}: not valid YAML: {exc}") from None
    flat: list[Any] = []
    for doc in docs:
        if isinstance(doc, Mapping) and doc.get("kind") == "List":  # pyright: ignore[reportUnknownMemberType]
            flat.extend(doc.get("items") or [])  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        else:
            flat.append(doc)
    queues: list[Queue] = []
    seen: set[str] = set()
    for i, doc in enumerate(flat):
        where = f"{source} document {i + 1}"
        if not isinstance(doc, Mapping):
            raise QueueSpecError(f"{where}: expected a Queue mapping, got {type(doc).__name__}")
        typed: Mapping[str, Any] = doc  # pyright: ignore[reportUnknownVariableType]
        if typed.get("kind") != "Queue":
            raise QueueSpecError(f"{where}: kind is {typed.get('kind')!r}; only kind: Queue may be applied")
        queue = queue_from_dict(typed, where=where)
        name = queue.metadata.name or ""
        if name in seen:
            raise QueueSpecError(f"{where}: queue {name} is defined twice; keep one definition")
        seen.add(name)
        queues.append(queue)
    return queues


def _spec_fields(spec: QueueSpec, *, only_set: bool) -> JsonObject:
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=only_set)
    return {k: v for k, v in dumped.items() if k in MANAGED_FIELDS}


def _as_map(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping (as JSON gives them), else empty."""
    if not isinstance(value, dict):
        return {}
    typed = cast("dict[Any, Any]", value)
    return {str(k): v for k, v in typed.items()}


def _normalize(field: str, value: Any) -> Any:
    """Compare quantities by value, so `1Gi` in YAML equals `1073741824` as the apiserver may hold it."""
    if field in ("capability", "deserved") and isinstance(value, dict):
        return {k: parse_quantity(v) for k, v in _as_map(value).items()}
    if field == "guarantee" and isinstance(value, dict):
        return {k: parse_quantity(v) for k, v in _as_map(_as_map(value).get("resource")).items()}
    return value


def spec_patch(desired: Queue, current: Mapping[str, Any]) -> JsonObject:
    """The merge patch that makes `current` (the apiserver's Queue) match `desired`; `{}` when it does.

    Only fields the desired queue sets are compared (explicit defaults count as set); unset ones are left to
    the cluster. Resource lists are replaced whole, so a resource dropped from YAML is removed.
    """
    want = _spec_fields(desired.spec, only_set=True)
    have: Mapping[str, Any] = current.get("spec") or {}
    patch: JsonObject = {}
    for field, value in want.items():
        if _normalize(field, value) != _normalize(field, have.get(field)):
            if field in ("capability", "deserved", "guarantee") and isinstance(have.get(field), Mapping):
                patch[field] = _replace_map(field, value, have[field])
            else:
                patch[field] = value
    return {"spec": patch} if patch else {}


def _replace_map(field: str, want: Mapping[str, Any], have: Mapping[str, Any]) -> JsonObject:
    """A merge patch value replacing a resource map: keys absent from `want` are set to null (removed)."""
    if field == "guarantee":
        old: Mapping[str, Any] = have.get("resource") or {}
        new: Mapping[str, Any] = want.get("resource") or {}
        return {"resource": {**{k: None for k in old if k not in new}, **new}}
    return {**{k: None for k in have if k not in want}, **want}


def update_patch(
    *,
    weight: int | None = None,
    capability: Mapping[str, str] | None = None,
    guarantee: Mapping[str, str] | None = None,
    deserved: Mapping[str, str] | None = None,
    reclaimable: bool | None = None,
    parent: str | None = None,
    priority: int | None = None,
) -> JsonObject:
    """A merge patch for `queue update`: given resources are merged into the existing lists; `=0` keeps 0.

    Raises QueueSpecError when nothing is to change, so the command can say which flags exist.
    """
    spec = QueueSpec.model_validate(
        {
            k: v
            for k, v in {
                "weight": weight,
                "capability": dict(capability) if capability else None,
                "guarantee": {"resource": dict(guarantee)} if guarantee else None,
                "deserved": dict(deserved) if deserved else None,
                "reclaimable": reclaimable,
                "parent": parent,
                "priority": priority,
            }.items()
            if v is not None
        }
    )
    fields = _spec_fields(spec, only_set=True)
    if not fields:
        raise QueueSpecError(
            "nothing to update: give at least one of --weight, --capability, --guarantee, --deserved, "
            "--reclaimable/--no-reclaimable, --parent, --priority"
        )
    return {"spec": fields}


# ---- list rows ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobCounts:
    """TorchJobs of one queue by where they are: running (incl. restarting) or pending (incl. queued)."""

    running: int = 0
    pending: int = 0


def job_queue(job: Mapping[str, Any]) -> str:
    """The queue a TorchJob (wire form) joins; `default` when the spec leaves it out, as the API does."""
    spec: Mapping[str, Any] = job.get("spec") or {}
    sched: Mapping[str, Any] = spec.get("scheduling") or {}
    return str(sched.get("queue") or "default")


def job_phase(job: Mapping[str, Any]) -> Phase | None:
    """The TorchJob's phase; None before the operator wrote one, or for a phase this client does not know."""
    status: Mapping[str, Any] = job.get("status") or {}
    try:
        return Phase(status.get("phase"))
    except ValueError:
        return None


def count_jobs(jobs: Iterable[Mapping[str, Any]]) -> dict[str, JobCounts]:
    """Per queue: running and pending TorchJobs. A job with no phase yet is pending; finished and suspended
    jobs hold nothing and are not counted."""
    running: dict[str, int] = {}
    pending: dict[str, int] = {}
    for job in jobs:
        queue, phase = job_queue(job), job_phase(job)
        if phase in RUNNING_PHASES:
            running[queue] = running.get(queue, 0) + 1
        elif phase is None or phase in PENDING_PHASES:
            pending[queue] = pending.get(queue, 0) + 1
    return {q: JobCounts(running.get(q, 0), pending.get(q, 0)) for q in running.keys() | pending.keys()}


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One line of `pyroclast queue list`."""

    name: str
    state: str
    weight: int
    parent: str
    resources: str
    running: int
    pending: int

    def as_dict(self) -> JsonObject:
        """The row as JSON (for `-o json`)."""
        return {
            "name": self.name,
            "state": self.state,
            "weight": self.weight,
            "parent": self.parent,
            "resources": self.resources,
            "running": self.running,
            "pending": self.pending,
        }


def allocation(queue: Queue) -> str:
    """`cpu 2/8, nvidia.com/gpu 0/4`: allocated (status) over capability (spec); `-` for an uncapped resource.

    Resources listed in neither are left out; a queue with no capability and nothing allocated shows `-`.
    """
    allocated = (queue.status.allocated if queue.status else None) or {}
    capability = queue.spec.capability or {}
    names = sorted(set(capability) | {k for k, v in allocated.items() if parse_quantity(v) != 0})
    if not names:
        return "-"
    parts: list[str] = []
    for name in names:
        used = display_quantity(parse_quantity(allocated.get(name, 0)))
        cap = display_quantity(parse_quantity(capability[name])) if name in capability else "-"
        parts.append(f"{name} {used}/{cap}")
    return ", ".join(parts)


def queue_rows(queues: Sequence[Queue], counts: Mapping[str, JobCounts]) -> list[QueueRow]:
    """Rows for `queue list`, sorted by name."""
    rows: list[QueueRow] = []
    for q in sorted(queues, key=lambda q: q.metadata.name or ""):
        name = q.metadata.name or ""
        state = q.status.state.value if q.status and q.status.state else "Unknown"
        c = counts.get(name, JobCounts())
        rows.append(
            QueueRow(name, state, q.spec.weight, q.spec.parent or "-", allocation(q), c.running, c.pending)
        )
    return rows


def format_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A kubectl-style table: upper-case header, columns padded with three spaces."""
    lines = [[str(h).upper() for h in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


LIST_HEADER: Final = ("name", "state", "weight", "parent", "allocated/capability", "running", "pending")


def rows_table(rows: Iterable[QueueRow]) -> str:
    """The `queue list` table."""
    return format_table(
        LIST_HEADER, ((r.name, r.state, r.weight, r.parent, r.resources, r.running, r.pending) for r in rows)
    )


def queue_manifest(queue: Queue) -> JsonObject:
    """The wire form to create: no status (the apiserver strips it), no server-set metadata."""
    meta = ObjectMeta(
        name=queue.metadata.name, labels=queue.metadata.labels, annotations=queue.metadata.annotations
    )
    return Queue(metadata=meta, spec=queue.spec).to_k8s()


__all__ = [
    "JobCounts",
    "QueueRow",
    "QueueSpecError",
    "allocation",
    "build_queue",
    "count_jobs",
    "format_table",
    "queue_manifest",
    "queue_rows",
    "queues_from_yaml",
    "rows_table",
    "spec_patch",
    "update_patch",
]

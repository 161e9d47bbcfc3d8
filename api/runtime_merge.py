"""The effective spec of a TorchJob that names a runtime: runtime ⊕ job spec, a pure function on JSON.

The merge works on the unstructured wire form (camelCase dicts and lists), before the result is parsed into
:class:`~api.spec.TorchJobSpec`, so a spec field added later merges without a change here:

- objects merge key by key, recursively;
- a list whose items are all objects carrying one of :data:`MERGE_KEYS` merges item by item on that key: the
  runtime's items keep their order, a job item of the same name replaces the runtime's item whole (an env
  variable's `value` and `valueFrom`, a volume's sources, are one-of: half of each would be invalid), the
  job's new items follow;
- any other list of objects (tolerations, topology spread constraints) is the runtime's items then the job's
  items not already among them;
- anything else (scalars, lists of strings such as `args`): the job's value wins.

The job's stored spec carries the CRD's defaults, which the apiserver writes in at create time; a value equal
to its schema default is therefore taken as "not set" (:func:`strip_defaults`), so a runtime's queue or
restart budget is not hidden by `default` or `3` the job never wrote. A job that wants exactly the schema
default where its runtime sets something else cannot say so; it names another runtime or none.

A runtime lists paths it locks (`env[NCCL_IB_HCA]`, `template.spec.tolerations`, `scheduling.queue`): the
effective value there is always the runtime's, and a job that sets a different value is refused with
:class:`LockedField`, naming the path. Operator-owned fields always win: a runtime may not name a runtime,
set a reserved env variable (PET_*, ...), a reserved volume or mount (pyroclast-*), or the operator's pod
labels; such entries of the runtime are dropped (:func:`operator_owned_removed`) and the operator sets its own
when it builds the pods.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from api.constants import LABEL_JOB_NAME, LABEL_MANAGED_BY, RESERVED_VOLUME_PREFIX, is_reserved_env

Json = Any
JsonDict = dict[str, Any]
Path = tuple[str, ...]

MERGE_KEYS: Final = ("name", "mountPath")
"""Keys that name the items of a list (env, volumes, containers by name; volume mounts by mount path)."""

RUNTIME_REF: Final = "runtimeRef"
OPERATOR_LABEL_PREFIXES: Final = (LABEL_JOB_NAME.split("/", 1)[0] + "/", LABEL_MANAGED_BY)

_SEGMENT: Final = r"[a-zA-Z][a-zA-Z0-9]*(\[[^\[\]]+\])?"
LOCKED_PATH_PATTERN: Final = rf"^{_SEGMENT}(\.{_SEGMENT})*$"
"""A locked path: dotted camelCase spec fields; `[NAME]` picks the item of a named list."""


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class Segment:
    """One step of a locked path: a field, and the item name within it when the field is a named list."""

    field: str
    item: str | None = None


class LockedField(ValueError):
    """The job sets a field its runtime locks to another value."""

    def __init__(self, path: str, runtime: str, runtime_value: Json, job_value: Json) -> None:
        self.path = path
        self.runtime = runtime
        self.runtime_value = runtime_value
        self.job_value = job_value
        said = "leaves it unset" if runtime_value is MISSING else f"sets it to {_short(runtime_value)}"
        super().__init__(
            f"spec.{path} is locked by {runtime} (which {said}); the job sets {_short(job_value)}: remove "
            f"spec.{path} from the job, or use a runtime that does not lock it"
        )


def _short(value: Json, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_path(path: str) -> tuple[Segment, ...]:
    """`template.spec.volumes[data]` → (template, spec, volumes[data]); ValueError for a malformed path."""
    if re.fullmatch(LOCKED_PATH_PATTERN, path) is None:
        raise ValueError(f"locked path {path!r} is not of the form field.field[itemName]")
    out: list[Segment] = []
    for part in re.finditer(_SEGMENT, path):
        text = part.group(0)
        name, _, rest = text.partition("[")
        out.append(Segment(name, rest[:-1] if rest else None))
    return tuple(out)


def _merge_key(*lists: list[Json]) -> str | None:
    items = [item for values in lists for item in values]
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    return next((k for k in MERGE_KEYS if all(k in cast(JsonDict, i) for i in items)), None)


def _item(values: Json, key_value: str) -> Json:
    if not isinstance(values, list):
        return MISSING
    for item in cast(list[Json], values):
        if isinstance(item, dict):
            d = cast(JsonDict, item)
            if any(d.get(k) == key_value for k in MERGE_KEYS):
                return d
    return MISSING


def lookup(doc: Json, segments: tuple[Segment, ...]) -> Json:
    """The value at `segments` in `doc`, or MISSING."""
    node = doc
    for seg in segments:
        if not isinstance(node, dict) or seg.field not in node:
            return MISSING
        node = cast(JsonDict, node)[seg.field]
        if seg.item is not None:
            node = _item(node, seg.item)
            if node is MISSING:
                return MISSING
    return node


def _assign(doc: JsonDict, segments: tuple[Segment, ...], value: Json) -> None:
    """Set (or, for MISSING, remove) the value at `segments` in `doc`, in place."""
    node: JsonDict = doc
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg.item is None:
            if last:
                if value is MISSING:
                    node.pop(seg.field, None)
                else:
                    node[seg.field] = copy.deepcopy(value)
                return
            child = node.get(seg.field)
            if not isinstance(child, dict):
                if value is MISSING:
                    return
                child = {}
                node[seg.field] = child
            node = cast(JsonDict, child)
            continue
        items = node.get(seg.field)
        if not isinstance(items, list):
            if value is MISSING:
                return
            items = []
            node[seg.field] = items
        items_list = cast(list[Json], items)
        at = next((j for j, x in enumerate(items_list) if x is _item(items_list, seg.item)), None)
        if last:
            if value is MISSING:
                if at is not None:
                    del items_list[at]
                if not items_list:
                    node.pop(seg.field, None)
            elif at is not None:
                items_list[at] = copy.deepcopy(value)
            else:
                items_list.append(copy.deepcopy(value))
            return
        if at is None:
            if value is MISSING:
                return
            items_list.append({"name": seg.item})
            at = len(items_list) - 1
        node = cast(JsonDict, items_list[at])


def merge(runtime: Json, job: Json) -> Json:
    """`job` over `runtime` (module docstring): objects by key, named lists by name, the job's scalars win."""
    if job is MISSING:
        return copy.deepcopy(runtime)
    if runtime is MISSING:
        return copy.deepcopy(job)
    if isinstance(runtime, dict) and isinstance(job, dict):
        r, j = cast(JsonDict, runtime), cast(JsonDict, job)
        return {k: merge(r.get(k, MISSING), j.get(k, MISSING)) for k in (*r, *(k for k in j if k not in r))}
    if isinstance(runtime, list) and isinstance(job, list):
        r_items, j_items = cast(list[Json], runtime), cast(list[Json], job)
        key = _merge_key(r_items, j_items)
        if key is not None:
            ours = {cast(JsonDict, i)[key]: i for i in j_items}
            kept = [copy.deepcopy(ours.pop(cast(JsonDict, i)[key], i)) for i in r_items]
            return kept + [copy.deepcopy(i) for i in j_items if cast(JsonDict, i)[key] in ours]
        if all(isinstance(i, dict) for i in (*r_items, *j_items)) and r_items:
            joined: list[Json] = [*r_items, *(i for i in j_items if i not in r_items)]
            return copy.deepcopy(joined)
    return copy.deepcopy(cast(object, job))


def schema_defaults(schema: Mapping[str, Any], prefix: Path = ()) -> dict[Path, Json]:
    """Every `default` under `schema`'s object properties (not inside list items), by path."""
    out: dict[Path, Json] = {}
    for name, sub in cast(Mapping[str, Mapping[str, Any]], schema.get("properties", {})).items():
        path = (*prefix, name)
        if "default" in sub:
            out[path] = sub["default"]
        out.update(schema_defaults(sub, path))
    return out


def strip_defaults(spec: JsonDict, defaults: Mapping[Path, Json]) -> JsonDict:
    """`spec` without the values equal to their schema default; an object left empty by that goes too."""

    def walk(node: Json, path: Path) -> Json:
        if path in defaults and node == defaults[path]:
            return MISSING
        if not isinstance(node, dict) or not node:
            return cast(object, node)
        walked = {k: walk(v, (*path, k)) for k, v in cast(JsonDict, node).items()}
        kept = {k: v for k, v in walked.items() if v is not MISSING}
        return kept if kept else MISSING

    out = walk(spec, ())
    return cast(JsonDict, out) if isinstance(out, dict) else {}


def operator_owned_removed(defaults: JsonDict) -> JsonDict:
    """The runtime's defaults without what the operator owns: a runtimeRef, reserved env variables, reserved
    volumes and mounts, the operator's pod labels."""
    out = copy.deepcopy(defaults)
    out.pop(RUNTIME_REF, None)
    env = out.get("env")
    if isinstance(env, list):
        out["env"] = [e for e in cast(list[Json], env) if not _reserved_env(e)]
    template = out.get("template")
    if isinstance(template, dict):
        _drop_owned_template(cast(JsonDict, template))
    return out


def _reserved_env(item: Json) -> bool:
    return isinstance(item, dict) and is_reserved_env(str(cast(JsonDict, item).get("name", "")))


def _drop_owned_template(template: JsonDict) -> None:
    meta = template.get("metadata")
    if isinstance(meta, dict):
        labels = cast(JsonDict, meta).get("labels")
        if isinstance(labels, dict):
            cast(JsonDict, meta)["labels"] = {
                k: v for k, v in cast(JsonDict, labels).items() if not k.startswith(OPERATOR_LABEL_PREFIXES)
            }
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return
    for field in ("volumes", "volumeMounts"):
        items = cast(JsonDict, spec).get(field)
        if isinstance(items, list):
            cast(JsonDict, spec)[field] = [
                i
                for i in cast(list[Json], items)
                if not (
                    isinstance(i, dict)
                    and str(cast(JsonDict, i).get("name", "")).startswith(RESERVED_VOLUME_PREFIX)
                )
            ]


def effective_spec(
    runtime_name: str,
    runtime_spec: Mapping[str, Any],
    job_spec: Mapping[str, Any],
    defaults: Mapping[Path, Json],
) -> JsonDict:
    """The spec a job runs with: its runtime's `defaults` with the job's own values over them, the runtime's
    `locked` paths kept as the runtime has them. Raises :class:`LockedField` when the job sets a locked path
    to another value. `runtime_name` (`ClusterTorchRuntime/NAME`) is only quoted in that message."""
    base = operator_owned_removed(cast(JsonDict, runtime_spec.get("defaults") or {}))
    job = strip_defaults({k: v for k, v in job_spec.items() if k != RUNTIME_REF}, defaults)
    locked = [(path, parse_path(path)) for path in cast(list[str], runtime_spec.get("locked") or [])]
    for path, segments in locked:
        ours, theirs = lookup(job, segments), lookup(base, segments)
        if ours is not MISSING and ours != theirs:
            raise LockedField(path, runtime_name, theirs, ours)
    out = cast(JsonDict, merge(base, job))
    for _, segments in locked:
        _assign(out, segments, lookup(base, segments))
    if RUNTIME_REF in job_spec:
        out[RUNTIME_REF] = copy.deepcopy(job_spec[RUNTIME_REF])
    return out

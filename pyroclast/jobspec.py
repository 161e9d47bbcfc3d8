# pyright: strict
"""TorchJobs from command-line flags or YAML, the pure half of `pyroclast job submit` (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import yaml
from pydantic import ValidationError

from api import TorchJob
from api.problems import problems
from api.quantity import parse_quantity
from controller.runtime.objects import JsonObject
from pyroclast.errors import UsageError
from pyroclast.runtimes import parse_ref

GPU: Final = "nvidia.com/gpu"

# Where a flag lands in the spec, so a validation error names the flag the person typed (the deepest match).
FLAG_OF: Final = {
    "image": "--image",
    "command": "the command after --",
    "nodes": "--nodes/--min-nodes/--max-nodes",
    "count": "--nodes",
    "min": "--min-nodes",
    "max": "--max-nodes",
    "nprocPerNode": "--nproc",
    "resources": "--cpu/--memory/--gpus",
    "cpu": "--cpu",
    "memory": "--memory",
    GPU: "--gpus",
    "scheduling": "--queue/--priority-class",
    "queue": "--queue",
    "priorityClassName": "--priority-class",
    "env": "--env",
    "name": "NAME",
}


class JobSpecError(UsageError):
    """A job definition (flags or YAML) that cannot become a TorchJob; the message names the field."""


def job_from_dict(doc: Mapping[str, Any], *, where: str = "job") -> TorchJob:
    """Validate one TorchJob document; errors name the field path and what is wrong with it."""
    if doc.get("kind", "TorchJob") != "TorchJob":
        raise JobSpecError(f"{where}: kind is {doc.get('kind')!r}; only kind: TorchJob can be submitted")
    try:
        return TorchJob.model_validate({k: v for k, v in doc.items() if k != "status"})
    except ValidationError as exc:
        raise JobSpecError(f"{where}: {problems(exc, FLAG_OF)}") from None


def jobs_from_yaml(text: str, *, source: str = "<input>") -> list[TorchJob]:
    """Every TorchJob in a (multi-document) YAML text; other kinds are refused, not skipped."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise JobSpecError(f"{source}: not valid YAML: {exc}") from None
    jobs: list[TorchJob] = []
    for i, doc in enumerate(docs):
        where = f"{source} document {i + 1}"
        if not isinstance(doc, Mapping):
            raise JobSpecError(f"{where}: expected a TorchJob mapping, got {type(doc).__name__}")
        typed: Mapping[str, Any] = doc  # pyright: ignore[reportUnknownVariableType]
        job = job_from_dict(typed, where=where)
        if not job.metadata.name and not job.metadata.generate_name:
            raise JobSpecError(f"{where}: metadata.name (or generateName) is required")
        jobs.append(job)
    if not jobs:
        raise JobSpecError(f"{source} holds no TorchJob documents; nothing to submit")
    return jobs


def parse_env(items: Sequence[str]) -> list[JsonObject]:
    """`["A=1", "B=x=y"]` -> `[{name: A, value: "1"}, {name: B, value: "x=y"}]`; a later name wins."""
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise JobSpecError(f"--env: {item!r} is not NAME=VALUE (e.g. --env NCCL_DEBUG=INFO)")
        env[name] = value
    return [{"name": k, "value": v} for k, v in env.items()]


def parse_nproc(value: str) -> int | str:
    """--nproc: an integer, or auto, gpu or cpu."""
    return int(value) if value.isdigit() else value


def _quantity(flag: str, value: str) -> str:
    try:
        parse_quantity(value)
    except ValueError:
        raise JobSpecError(f"{flag}: {value!r} is not a quantity (use e.g. 8, 500m or 64Gi)") from None
    return value


def build_job(
    name: str,
    *,
    image: str | None,
    command: Sequence[str],
    namespace: str | None = None,
    nodes: int | None = None,
    min_nodes: int | None = None,
    max_nodes: int | None = None,
    nproc: int | str | None = None,
    gpus: int | None = None,
    cpu: str | None = None,
    memory: str | None = None,
    queue: str | None = None,
    priority_class: str | None = None,
    preemptible: bool | None = None,
    env: Sequence[str] = (),
    suspend: bool = False,
    runtime: str | None = None,
) -> TorchJob:
    """A TorchJob from `pyroclast job submit` flags; unset values keep the API's defaults, or the runtime's
    (`runtime`: NAME of a ClusterTorchRuntime, or TorchRuntime/NAME).

    An elastic job (min and max) without `nodes` starts at max: the gang needs only min to run.
    """
    if not image and not runtime:
        raise JobSpecError(
            "--image is required when submitting from flags without --runtime (or give -f FILE)"
        )
    if not command:
        raise JobSpecError(
            "the command is missing: put what torchrun runs after --, e.g. -- -m workloads.train --steps 100"
        )
    if (min_nodes is None) != (max_nodes is None):
        raise JobSpecError("--min-nodes and --max-nodes go together (an elastic job needs both)")
    spec: JsonObject = {"command": list(command)}
    if image:
        spec["image"] = image
    if runtime:
        try:
            kind, runtime_name = parse_ref(runtime)
        except ValueError as exc:
            raise JobSpecError(str(exc)) from None
        spec["runtimeRef"] = {"kind": kind.value, "name": runtime_name}
    node_spec: JsonObject = {}
    if nodes is not None:
        node_spec["count"] = nodes
    if min_nodes is not None and max_nodes is not None:
        node_spec |= {"min": min_nodes, "max": max_nodes}
        node_spec.setdefault("count", max_nodes)
    if node_spec:
        spec["nodes"] = node_spec
    if nproc is not None:
        spec["nprocPerNode"] = nproc
    requests = {k: _quantity(f"--{k}", v) for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    resources: JsonObject = {}
    if requests:
        resources["requests"] = requests
    if gpus:
        resources["limits"] = {GPU: gpus}
    if resources:
        spec["resources"] = resources
    scheduling: JsonObject = {}
    if queue:
        scheduling["queue"] = queue
    if priority_class:
        scheduling["priorityClassName"] = priority_class
    if preemptible is not None:
        scheduling["preemptible"] = preemptible
    if scheduling:
        spec["scheduling"] = scheduling
    if env:
        spec["env"] = parse_env(env)
    if suspend:
        spec["runPolicy"] = {"suspend": True}
    meta: JsonObject = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return job_from_dict({"metadata": meta, "spec": spec}, where=f"job {name}")


def submit_manifest(job: TorchJob, namespace: str) -> JsonObject:
    """The wire form to create in `namespace`: no status, no server-set metadata."""
    meta = job.metadata
    wire: JsonObject = {
        "apiVersion": job.api_version,
        "kind": job.kind,
        "metadata": {
            k: v
            for k, v in {
                "name": meta.name,
                "generateName": meta.generate_name if not meta.name else None,
                "namespace": namespace,
                "labels": meta.labels,
                "annotations": meta.annotations,
            }.items()
            if v
        },
        "spec": job.spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True),
    }
    return wire


__all__ = [
    "JobSpecError",
    "build_job",
    "job_from_dict",
    "jobs_from_yaml",
    "parse_env",
    "parse_nproc",
    "submit_manifest",
]

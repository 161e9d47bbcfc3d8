# pyright: strict
"""Runtimes SDK: read ClusterTorchRuntimes and TorchRuntimes, and see a job as its runtime would make it.

`effective_for_submit` applies the same pure merge the operator applies on the job's first reconcile, so a
submit can refuse at once what the operator would refuse (a locked field the job overrides) and check the
queue and priority class the job will really use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, TypeVar

import anyio
from pydantic import ValidationError

from api import TorchJob
from api.runtime import ClusterTorchRuntime, RuntimeKind, RuntimeRecord, TorchRuntime
from controller.runtime.client import Client
from controller.runtime.errors import NotFound
from controller.runtime.objects import JsonObject
from controller.torchjob.kinds import RUNTIMES
from controller.torchjob.runtime import Unresolved, effective_job
from pyroclast.errors import NotFoundError, RefusedError

Runtime = ClusterTorchRuntime | TorchRuntime
T = TypeVar("T")
DEFAULT_NAMESPACE: Final = "default"


class RuntimeNotFoundError(NotFoundError):
    """The runtime a job names does not exist: the job would wait for it."""

    def __init__(self, kind: RuntimeKind, name: str, namespace: str | None):
        where = f" in namespace {namespace}" if kind == RuntimeKind.NAMESPACED else ""
        super().__init__(
            f"{kind} {name} does not exist{where}; list runtimes with `pyroclast runtime list`, or ask the "
            "platform team to create it"
        )
        self.kind = kind
        self.name = name


class RuntimeRefusedError(RefusedError):
    """The job, merged with its runtime, is refused (a locked field overridden, an invalid merged spec)."""


def parse_ref(text: str) -> tuple[RuntimeKind, str]:
    """`NAME` (a ClusterTorchRuntime), `ClusterTorchRuntime/NAME` or `TorchRuntime/NAME`."""
    kind, sep, name = text.rpartition("/")
    if not sep:
        return RuntimeKind.CLUSTER, text
    try:
        return RuntimeKind(kind), name
    except ValueError:
        raise ValueError(
            f"--runtime {text!r}: the kind is ClusterTorchRuntime or TorchRuntime (e.g. TorchRuntime/{name})"
        ) from None


def _model(kind: RuntimeKind, obj: JsonObject) -> Runtime:
    return ClusterTorchRuntime.from_k8s(obj) if kind == RuntimeKind.CLUSTER else TorchRuntime.from_k8s(obj)


async def get_runtime(
    client: Client, name: str, kind: RuntimeKind = RuntimeKind.CLUSTER, namespace: str = DEFAULT_NAMESPACE
) -> Runtime:
    """One runtime; raises RuntimeNotFoundError."""
    try:
        return _model(kind, await client.get(RUNTIMES[kind], name, namespace))
    except NotFound:
        raise RuntimeNotFoundError(kind, name, namespace) from None


async def list_runtimes(client: Client, namespace: str | None = DEFAULT_NAMESPACE) -> list[Runtime]:
    """The ClusterTorchRuntimes, then the TorchRuntimes of `namespace` (of all when None), by name."""
    out: list[Runtime] = []
    for kind in (RuntimeKind.CLUSTER, RuntimeKind.NAMESPACED):
        items = (
            await client.list(RUNTIMES[kind], namespace if kind == RuntimeKind.NAMESPACED else None)
        ).items
        out.extend(
            sorted(
                (_model(kind, o) for o in items),
                key=lambda r: (r.metadata.namespace or "", r.metadata.name or ""),
            )
        )
    return out


async def effective_for_submit(client: Client, job: TorchJob, namespace: str) -> TorchJob:
    """`job` as its runtime makes it (unchanged without a runtimeRef); raises RuntimeNotFoundError or
    RuntimeRefusedError."""
    ref = job.spec.runtime_ref
    if ref is None:
        return job
    kind = RuntimeKind(ref.kind)
    runtime = await get_runtime(client, ref.name, kind, namespace)
    record = RuntimeRecord(
        kind=ref.kind, name=ref.name, hash=runtime.spec.digest(), spec=runtime.spec.to_k8s()
    )
    raw: JsonObject = {
        **job.to_k8s(),
        "spec": job.spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True),
    }
    try:
        return TorchJob.from_k8s(effective_job(raw, record))
    except (Unresolved, ValidationError) as exc:
        raise RuntimeRefusedError(str(exc)) from None


class Runtimes:
    """The same reads, blocking: each call connects, runs the async function and returns its result."""

    def __init__(self, kubeconfig: str | Path | None = None, context: str | None = None):
        self.kubeconfig = kubeconfig
        self.context = context

    def _run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        async def go() -> T:
            return await fn(await Client.connect(self.kubeconfig, self.context))

        return anyio.run(go)

    def get(
        self, name: str, kind: RuntimeKind = RuntimeKind.CLUSTER, namespace: str = DEFAULT_NAMESPACE
    ) -> Runtime:
        """See `get_runtime`."""
        return self._run(lambda c: get_runtime(c, name, kind, namespace))

    def list(self, namespace: str | None = DEFAULT_NAMESPACE) -> list[Runtime]:
        """See `list_runtimes`."""
        return self._run(lambda c: list_runtimes(c, namespace))

"""Cluster: the trace context written on an object carries across an operator restart."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.manager import Manager
from controller.runtime.reconcile import Request
from controller.runtime.resource import CONFIG_MAPS
from controller.runtime.tracing import TRACE_CONTEXT_ANNOTATION
from e2e.cluster import Cluster

pytestmark = [pytest.mark.cluster]


async def eventually(pred: Callable[[], bool], within: float) -> None:
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.05)


def trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


async def run_operator(client: Client, namespace: str) -> list[ReadableSpan]:
    """One operator lifetime: reconcile every ConfigMap once, then stop; returns the reconcile spans of `job`
    (the namespace also holds kube-root-ca.crt, KCM's root-CA bundle, reconciled in its own trace)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[str] = []

    async def reconcile(req: Request) -> None:
        seen.append(req.name)

    manager = Manager(client, namespace=namespace, metrics_bind_address="0", tracer_provider=provider)
    manager.add(Controller(reconcile, for_=CONFIG_MAPS, name=f"e2e-trace-{namespace}"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await eventually(lambda: "job" in seen, 30)
        await anyio.sleep(0.5)
        manager.stop()
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("reconcile ")]
    return [s for s in spans if (s.attributes or {}).get("pyroclast.k8s.object.name") == "job"]


async def test_trace_context_survives_operator_restart(cluster: Cluster, namespace: str) -> None:
    assert cluster.api is not None
    client = await Client.connect(cluster.kubeconfig)
    await client.create(
        CONFIG_MAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "job"}}, namespace
    )
    first = await run_operator(client, namespace)
    assert first
    stored = await client.get(CONFIG_MAPS, "job", namespace)
    carrier = json.loads(stored["metadata"]["annotations"][TRACE_CONTEXT_ANNOTATION])
    carried_trace = carrier["traceparent"].split("-")[1]
    assert trace_id(first[0]) == carried_trace
    second = await run_operator(client, namespace)  # a new process in effect: new provider, new cache
    assert second
    assert {trace_id(s) for s in second} == {carried_trace}
    again = await client.get(CONFIG_MAPS, "job", namespace)
    assert (
        again["metadata"]["annotations"][TRACE_CONTEXT_ANNOTATION]
        == stored["metadata"]["annotations"][TRACE_CONTEXT_ANNOTATION]
    ), "written once"

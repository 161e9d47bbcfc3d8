"""Reconcile spans and the W3C trace context carried on the object (in-memory exporter)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.manager import Manager
from controller.runtime.reconcile import Request
from controller.runtime.resource import CONFIG_MAPS
from controller.runtime.tracing import TRACE_CONTEXT_ANNOTATION, carried_context, configure_from_env

API = "api/v1"
PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{PARENT_TRACE}-b7ad6b7169203331-01"


def cm(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


async def eventually(pred: Callable[[], bool], within: float = 60.0) -> None:  # a hang guard only
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.005)


def trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp, exporter


async def run_once(
    fake: FakeApiServer, tp: TracerProvider, reconcile_calls: list[str], fail: bool = False
) -> None:
    async def reconcile(req: Request) -> None:
        reconcile_calls.append(req.name)
        if fail:
            raise ValueError("nope")

    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None, tracer_provider=tp)
    manager.add(Controller(reconcile, for_=CONFIG_MAPS, name="traced", trace_objects=True))
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await eventually(lambda: len(reconcile_calls) >= 1)
        await anyio.sleep(0.05)
        manager.stop()


async def test_first_reconcile_writes_context_and_later_ones_join_the_trace() -> None:
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", cm("job"))
    tp, exporter = provider()
    calls: list[str] = []
    await run_once(fake, tp, calls)
    spans = [s for s in exporter.get_finished_spans() if s.name == "reconcile traced"]
    assert spans, "a reconcile span was recorded"
    first = spans[0]
    assert first.attributes is not None
    assert first.attributes["k8s.namespace.name"] == "default"
    assert first.attributes["pyroclast.k8s.object.name"] == "job"
    assert first.attributes["pyroclast.k8s.object.kind"] == "ConfigMap"
    stored = fake.objects[(API, "configmaps")][("default", "job")]
    carrier = json.loads(stored["metadata"]["annotations"][TRACE_CONTEXT_ANNOTATION])
    assert carrier["traceparent"].split("-")[1] == trace_id(first)
    # a second operator process (new provider) joins the same trace
    tp2, exporter2 = provider()
    calls2: list[str] = []
    await run_once(fake, tp2, calls2)
    later = [s for s in exporter2.get_finished_spans() if s.name == "reconcile traced"]
    assert later
    assert {trace_id(s) for s in later} == {trace_id(first)}
    assert later[0].parent is not None


async def test_context_set_by_the_creating_client_is_kept_and_used() -> None:
    fake = FakeApiServer()
    fake.put_object(
        API, "configmaps", cm("job", {TRACE_CONTEXT_ANNOTATION: json.dumps({"traceparent": PARENT})})
    )
    tp, exporter = provider()
    await run_once(fake, tp, [])
    spans = [s for s in exporter.get_finished_spans() if s.name == "reconcile traced"]
    assert spans
    assert all(trace_id(s) == PARENT_TRACE for s in spans)
    assert not any(m == "PATCH" for m, _, _ in fake.requests), "an existing context is never overwritten"


async def test_bare_traceparent_annotation_and_error_status() -> None:
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", cm("job", {TRACE_CONTEXT_ANNOTATION: PARENT}))
    tp, exporter = provider()
    await run_once(fake, tp, [], fail=True)
    span = next(s for s in exporter.get_finished_spans() if s.name == "reconcile traced")
    assert trace_id(span) == PARENT_TRACE
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ValueError"


def test_invalid_carriers_are_ignored() -> None:
    assert carried_context(cm("x", {TRACE_CONTEXT_ANNOTATION: "{not json"})) is None
    assert carried_context(cm("x", {TRACE_CONTEXT_ANNOTATION: "00-zz-zz-01"})) is None
    assert carried_context(cm("x", {TRACE_CONTEXT_ANNOTATION: "x" * 2000})) is None
    assert carried_context(cm("x")) is None


async def test_no_tracing_configured_means_no_annotation_writes(monkeypatch: Any) -> None:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    assert configure_from_env() is None
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", cm("job"))
    calls: list[str] = []

    async def reconcile(req: Request) -> None:
        calls.append(req.name)

    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    manager.add(Controller(reconcile, for_=CONFIG_MAPS, name="untraced"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await eventually(lambda: len(calls) == 1)
        manager.stop()
    assert not any(m == "PATCH" for m, _, _ in fake.requests)


def test_otlp_exporter_configured_from_standard_env(monkeypatch: Any) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-operator")
    tp = configure_from_env(install_global=False)
    assert isinstance(tp, TracerProvider)
    assert tp.resource.attributes["service.name"] == "my-operator"
    tp.shutdown()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert configure_from_env(install_global=False) is None

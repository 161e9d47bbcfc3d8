"""The event recorder: the Event body, never waiting, a bounded queue, limited concurrency, failures, stop."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from controller.runtime.errors import Forbidden
from controller.runtime.metrics import REGISTRY
from controller.runtime.objects import JsonObject
from controller.runtime.recorder import MESSAGE_LIMIT, EventRecorder, ObjectRef, event_body
from controller.runtime.resource import EVENTS, Resource

NOW = datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC)
JOB = ObjectRef("pyroclast.dev/v1alpha1", "TorchJob", "team-a", "llama", uid="u-1", resource_version="42")


def sent_count(result: str) -> float:
    return REGISTRY.get_sample_value("pyroclast_events_total", {"result": result}) or 0.0


class FakeSink:
    """Records creates (`delay` s each), refuses reasons in `refuse`, counts sends in flight."""

    def __init__(self, *, delay: float = 0.0, refuse: tuple[str, ...] = ()) -> None:
        self.delay = delay
        self.refuse = refuse
        self.created: list[tuple[str, JsonObject]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.trace_ids: dict[str, int] = {}

    async def create(self, resource: Resource, obj: JsonObject, namespace: str | None = None) -> JsonObject:
        assert resource == EVENTS
        assert namespace is not None
        self.trace_ids[obj["reason"]] = trace.get_current_span().get_span_context().trace_id
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.delay)
            if obj["reason"] in self.refuse:
                raise Forbidden(403, "Forbidden", "events is forbidden")
            self.created.append((namespace, obj))
            return obj
        finally:
            self.in_flight -= 1

    def reasons(self) -> list[str]:
        return [obj["reason"] for _, obj in self.created]


def test_event_body_is_a_core_v1_event_on_the_object() -> None:
    assert event_body(JOB, "Normal", "AllWorkersRunning", "all 2 gang members started", NOW, "pyroclast") == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "llama.", "namespace": "team-a"},
        "involvedObject": {
            "apiVersion": "pyroclast.dev/v1alpha1",
            "kind": "TorchJob",
            "name": "llama",
            "namespace": "team-a",
            "uid": "u-1",
            "resourceVersion": "42",
        },
        "type": "Normal",
        "reason": "AllWorkersRunning",
        "message": "all 2 gang members started",
        "source": {"component": "pyroclast"},
        "reportingComponent": "pyroclast",
        "reportingInstance": "pyroclast",
        "firstTimestamp": "2026-11-23T12:00:05Z",
        "lastTimestamp": "2026-11-23T12:00:05Z",
        "count": 1,
    }


def test_event_body_cuts_long_messages_and_writes_utc_whole_seconds() -> None:
    local = (NOW + timedelta(microseconds=999)).astimezone(timezone(timedelta(hours=2)))
    body = event_body(JOB, "Warning", "WorkerFailed", "x" * (MESSAGE_LIMIT + 10), local, "pyroclast")
    assert body["message"] == "x" * MESSAGE_LIMIT
    assert body["type"] == "Warning"
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-11-23T12:00:05Z"


def test_bad_settings_are_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        EventRecorder(FakeSink(), component="pyroclast", capacity=0)
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        EventRecorder(FakeSink(), component="pyroclast", concurrency=0)


async def test_event_logs_and_queues_without_sending(caplog: pytest.LogCaptureFixture) -> None:
    sink = FakeSink()
    recorder = EventRecorder(sink, component="pyroclast", clock=lambda: NOW)
    with caplog.at_level(logging.INFO, logger="controller.runtime.recorder"):
        recorder.event(JOB, "Normal", "WaitingForScheduler", "gang waits")
    assert sink.created == []
    assert recorder.pending == 1
    [line] = [r for r in caplog.records if r.name == "controller.runtime.recorder"]
    assert line.getMessage() == "torchjob team-a/llama: Normal WaitingForScheduler: gang waits"
    assert (line.__dict__["object"], line.__dict__["reason"]) == ("llama", "WaitingForScheduler")
    await recorder.flush()
    assert sink.created == [
        ("team-a", event_body(JOB, "Normal", "WaitingForScheduler", "gang waits", NOW, "pyroclast"))
    ]
    assert recorder.pending == 0


async def test_a_full_queue_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    dropped, sent = sent_count("dropped"), sent_count("sent")
    sink = FakeSink()
    recorder = EventRecorder(sink, component="pyroclast", capacity=2)
    with caplog.at_level(logging.WARNING, logger="controller.runtime.recorder"):
        for reason in ("A", "B", "C", "D"):
            recorder.event(JOB, "Normal", reason, "m")
    assert recorder.pending == 2
    assert sent_count("dropped") == dropped + 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["event queue full (2): dropping Events"], "one warning per run of drops"
    await recorder.flush()
    assert sink.reasons() == ["A", "B"]
    assert sent_count("sent") == sent + 2


async def test_a_refused_event_is_logged_and_counted_and_the_rest_still_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed, sent = sent_count("failed"), sent_count("sent")
    sink = FakeSink(refuse=("Denied",))
    recorder = EventRecorder(sink, component="pyroclast")
    for reason in ("Before", "Denied", "After"):
        recorder.event(JOB, "Normal", reason, "m")
    with caplog.at_level(logging.WARNING, logger="controller.runtime.recorder"):
        await recorder.flush()
    assert sorted(sink.reasons()) == ["After", "Before"]
    assert sent_count("failed") == failed + 1
    assert sent_count("sent") == sent + 2
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("could not record event Denied on team-a/llama: 403 Forbidden")


async def test_run_sends_in_the_background_at_most_concurrency_at_once() -> None:
    sink = FakeSink(delay=0.02)
    recorder = EventRecorder(sink, component="pyroclast", concurrency=3)
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        for i in range(12):
            recorder.event(JOB, "Normal", f"R{i}", "m")
        with anyio.fail_after(60):
            while len(sink.created) < 12:  # noqa: ASYNC110 - polling the fake's record
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert sorted(sink.reasons()) == sorted(f"R{i}" for i in range(12))
    assert sink.most_in_flight == 3


async def test_stop_flushes_what_is_queued_and_in_flight() -> None:
    sink = FakeSink(delay=0.05)
    recorder = EventRecorder(sink, component="pyroclast", concurrency=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        for i in range(6):
            recorder.event(JOB, "Normal", f"R{i}", "m")
        await anyio.sleep(0.01)  # two sends in flight, four queued
        assert sink.in_flight == 2
        tg.cancel_scope.cancel()
    assert sorted(sink.reasons()) == sorted(f"R{i}" for i in range(6))
    assert recorder.pending == 0


async def test_stop_gives_up_after_the_flush_timeout(caplog: pytest.LogCaptureFixture) -> None:
    sink = FakeSink(delay=60)
    recorder = EventRecorder(sink, component="pyroclast", concurrency=1, flush_timeout=0.1)
    with caplog.at_level(logging.WARNING, logger="controller.runtime.recorder"), anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run)
            recorder.event(JOB, "Normal", "Slow", "m")
            recorder.event(JOB, "Normal", "Queued", "m")
            await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert sink.created == []
    assert "event recorder stopped with 2 Events unsent" in [r.getMessage() for r in caplog.records]


async def test_a_create_is_traced_in_the_context_the_event_was_recorded_in() -> None:
    sink = FakeSink()
    recorder = EventRecorder(sink, component="pyroclast")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("reconcile torchjob") as span:
        recorder.event(JOB, "Normal", "InSpan", "m")
    recorder.event(JOB, "Normal", "Outside", "m")
    await recorder.flush()
    assert sink.trace_ids == {"InSpan": span.get_span_context().trace_id, "Outside": 0}

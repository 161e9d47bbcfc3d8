"""The event recorder: core/v1 Events off the reconcile path, as client-go's EventBroadcaster keeps them.

:meth:`EventRecorder.event` builds the Event, logs it and queues it without waiting; :meth:`EventRecorder.run`
(a manager runnable) sends from the queue with at most ``concurrency`` creates in flight, so Events never hold
up a reconcile nor crowd out its writes. Best effort: a full queue drops the Event, a refused create is
logged; both are counted (``pyroclast_events_total``) and neither ever reaches the caller. When the runnable
is stopped, what is still queued is sent within ``flush_timeout``. An Event's create is traced in the
context it was recorded in (the reconcile's span), though it is sent after that span ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, Protocol

import anyio
from opentelemetry import context as otel_context

from controller.runtime.metrics import EVENT_RESULTS, EVENTS_TOTAL
from controller.runtime.objects import JsonObject
from controller.runtime.resource import EVENTS, Resource

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
_Queued = tuple[JsonObject, otel_context.Context]

MESSAGE_LIMIT: Final = 1024
"""Characters of a message kept (the API server refuses Events with much longer ones)."""
DEFAULT_CAPACITY: Final = 1000
DEFAULT_CONCURRENCY: Final = 4
DEFAULT_FLUSH_TIMEOUT: Final = 5.0


class EventSink(Protocol):
    """What the recorder needs of :class:`~controller.runtime.client.Client`."""

    async def create(
        self, resource: Resource, obj: JsonObject, namespace: str | None = None
    ) -> JsonObject: ...


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object an Event is about (a core/v1 ObjectReference)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None
    resource_version: str | None = None


def event_body(
    ref: ObjectRef, type_: EventType, reason: str, message: str, now: datetime, component: str
) -> JsonObject:
    """The core/v1 Event recording `reason` on `ref` at `now` (a fresh one each time: no aggregation)."""
    stamp = now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
            "resourceVersion": ref.resource_version,
        },
        "type": type_,
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EventRecorder:
    """Queues Events for `client` and sends them in the background; run :meth:`run` on the manager."""

    def __init__(
        self,
        client: EventSink,
        *,
        component: str,
        capacity: int = DEFAULT_CAPACITY,
        concurrency: int = DEFAULT_CONCURRENCY,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        clock: Callable[[], datetime] = _utcnow,
    ):
        if capacity < 1:
            raise ValueError(f"EventRecorder capacity must be >= 1, got {capacity}")
        if concurrency < 1:
            raise ValueError(f"EventRecorder concurrency must be >= 1, got {concurrency}")
        self.client = client
        self.component = component
        self.concurrency = concurrency
        self.flush_timeout = flush_timeout
        self._clock = clock
        self._queue, self._receive = anyio.create_memory_object_stream[_Queued](capacity)
        self._cut: list[_Queued] = []
        """Events whose send a stop interrupted; the flush sends them first."""
        self._dropping = False
        for result in EVENT_RESULTS:
            EVENTS_TOTAL.labels(result=result)

    @property
    def pending(self) -> int:
        """Events queued and not yet taken by a sender."""
        return self._queue.statistics().current_buffer_used + len(self._cut)

    def event(
        self, ref: ObjectRef, type_: EventType, reason: str, message: str, *, now: datetime | None = None
    ) -> None:
        """Record an Event on `ref`: logged now, sent later; never raises, never waits."""
        body = event_body(ref, type_, reason, message, now or self._clock(), self.component)
        log.info(
            "%s %s/%s: %s %s: %s",
            ref.kind.lower(),
            ref.namespace,
            ref.name,
            type_,
            reason,
            message,
            extra={"kind": ref.kind, "namespace": ref.namespace, "object": ref.name, "reason": reason},
        )
        try:
            self._queue.send_nowait((body, otel_context.get_current()))
        except anyio.WouldBlock:
            EVENTS_TOTAL.labels(result="dropped").inc()
            if not self._dropping:  # one warning per run of drops, not one per Event
                log.warning(
                    "event queue full (%d): dropping Events", self._queue.statistics().max_buffer_size
                )
            self._dropping = True
        else:
            self._dropping = False

    async def run(self) -> None:
        """Send queued Events until cancelled; then flush what is left within ``flush_timeout``."""
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self.concurrency):
                    tg.start_soon(self._sender)
        finally:
            with anyio.move_on_after(self.flush_timeout, shield=True) as scope:
                await self.flush()
            if scope.cancelled_caught:
                log.warning("event recorder stopped with %d Events unsent", self.pending)

    async def flush(self) -> None:
        """Send every queued Event, ``concurrency`` at a time; returns once the queue is empty."""
        async with anyio.create_task_group() as tg:
            for _ in range(self.concurrency):
                tg.start_soon(self._drain)

    async def _sender(self) -> None:
        async for item in self._receive:
            await self._send(item)

    async def _drain(self) -> None:
        while True:
            if self._cut:
                item = self._cut.pop(0)
            else:
                try:
                    item = self._receive.receive_nowait()
                except anyio.WouldBlock:
                    return
            await self._send(item)

    async def _send(self, item: _Queued) -> None:
        body, context = item
        meta: JsonObject = body["metadata"]
        token = otel_context.attach(context)
        try:
            await self.client.create(EVENTS, body, meta["namespace"])
        except anyio.get_cancelled_exc_class():
            self._cut.append(item)  # may reach the server twice, rather than never
            raise
        except Exception as err:  # best effort: an Event never fails its caller
            EVENTS_TOTAL.labels(result="failed").inc()
            involved: JsonObject = body["involvedObject"]
            log.warning(
                "could not record event %s on %s/%s: %s",
                body["reason"],
                involved["namespace"],
                involved["name"],
                err,
                extra={
                    "reason": body["reason"],
                    "namespace": involved["namespace"],
                    "object": involved["name"],
                },
            )
        else:
            EVENTS_TOTAL.labels(result="sent").inc()
        finally:
            otel_context.detach(token)

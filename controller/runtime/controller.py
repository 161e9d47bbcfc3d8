"""Controller: a work queue of :class:`Request` keys drained by N workers calling a reconcile function.

Result handling (controller-runtime's ``reconcileHandler``):

=====================================  ==============================================  ==============
reconcile outcome                      queue action                                    ``result`` label
=====================================  ==============================================  ==============
raises :class:`TerminalError`          none (``terminal_reconcile_errors_total``)      ``error``
raises anything else / times out       ``add_rate_limited`` (Result ignored)           ``error``
``Result(requeue_after=s)``, s > 0     ``forget`` then ``add_after(s)``                ``requeue_after``
``Result(requeue=True)``               ``add_rate_limited``                            ``requeue``
``Result()`` or ``None``               ``forget``                                      ``success``
=====================================  ==============================================  ==============

A key is never reconciled by two workers at once (the work queue's processing set); an
exception in one reconcile never stops a worker.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from opentelemetry import trace

from controller.runtime import metrics, tracing
from controller.runtime.errors import ApiError
from controller.runtime.handler import EventHandler, for_object, for_owner
from controller.runtime.informer import InformerEvent
from controller.runtime.objects import JsonObject
from controller.runtime.predicate import Predicate
from controller.runtime.ratelimiter import RateLimiter
from controller.runtime.reconcile import Request, Result, TerminalError
from controller.runtime.resource import Resource
from controller.runtime.workqueue import QueueShutDown, WorkQueue

if TYPE_CHECKING:
    from controller.runtime.manager import Manager

log = logging.getLogger(__name__)

Reconciler = Callable[[Request], Awaitable[Result | None]]


@dataclass(frozen=True, slots=True)
class Watch:
    """A resource to watch and the handler that maps its events to requests (:mod:`.handler`)."""

    resource: Resource
    handler: EventHandler
    predicates: tuple[Predicate, ...] = ()
    namespace: str | None = None


class Controller:
    """Reconciles objects of ``for_`` (and their owned objects) with ``reconcile``.

    ``name`` must be unique per manager (it is the metrics label); it defaults to the lowercase
    kind. ``workers`` defaults to 1 (``MaxConcurrentReconciles``). ``owns`` maps events of
    owned objects to their controller owner; ``watches`` adds arbitrary mappings. ``predicates``
    filter events of ``for_`` only, ``owns_predicates`` those of the owned kinds. ``reconcile_timeout``
    (default none) bounds one reconcile.
    With ``trace_objects`` the W3C context of the first reconcile is written onto the object.
    """

    def __init__(
        self,
        reconcile: Reconciler,
        *,
        for_: Resource,
        name: str | None = None,
        owns: Sequence[Resource] = (),
        watches: Sequence[Watch] = (),
        predicates: Sequence[Predicate] = (),
        owns_predicates: Sequence[Predicate] = (),
        workers: int = 1,
        rate_limiter: RateLimiter[Request] | None = None,
        reconcile_timeout: float | None = None,
        namespace: str | None = None,
        trace_objects: bool = True,
        need_leader_election: bool = True,
    ):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.name = name or for_.kind.lower()
        self.reconcile = reconcile
        self.for_ = for_
        self.namespace = namespace
        self.watches: list[Watch] = [Watch(for_, for_object(), tuple(predicates), namespace)]
        self.watches += [Watch(r, for_owner(for_), tuple(owns_predicates), namespace) for r in owns]
        self.watches += list(watches)
        self.workers = workers
        self.reconcile_timeout = reconcile_timeout
        self.trace_objects = trace_objects
        self.need_leader_election = need_leader_election
        self.queue: WorkQueue[Request] = WorkQueue(self.name, controller=self.name, rate_limiter=rate_limiter)
        self._manager: Manager | None = None
        self._tracer = trace.get_tracer("pyroclast.controller")
        self.active = 0
        self.max_active_per_key = 0
        self._active_keys: dict[Request, int] = {}
        self._stopping = False
        metrics.init_controller(self.name, workers)

    # --- wiring -----------------------------------------------------------------------------

    def bind(self, manager: Manager) -> None:
        """Register the informers and event handlers this controller needs (called by the manager)."""
        self._manager = manager
        if manager.tracer_provider is not None:
            self._tracer = manager.tracer_provider.get_tracer("pyroclast.controller")
        for watch in self.watches:
            informer = manager.informer(watch.resource, watch.namespace)
            informer.add_handler(self._handler(watch))

    def _handler(self, watch: Watch) -> Callable[[InformerEvent], None]:
        def on_event(event: InformerEvent) -> None:
            if not all(p(event) for p in watch.predicates):
                return
            for request in watch.handler(event):
                self.queue.add(request)

        return on_event

    def enqueue(self, request: Request) -> None:
        """Ask for a reconcile of `request` from outside the watches (a report that arrived over HTTP, say):
        queued once however often asked before a worker takes it, as an event's request is."""
        self.queue.add(request)

    def get(self, request: Request, *, copy: bool = True) -> JsonObject | None:
        """The ``for_`` object of ``request`` from the cache (a deep copy unless ``copy=False``)."""
        if self._manager is None:
            raise RuntimeError(f"controller {self.name!r} is not added to a manager")
        return self._manager.informer(self.for_, self.namespace).cache.get(request.key, copy=copy)

    # --- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the workers until cancelled or the queue is shut down and drained."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._sample_unfinished_work)
            async with anyio.create_task_group() as workers:
                for _ in range(self.workers):
                    workers.start_soon(self._worker)
            tg.cancel_scope.cancel()

    async def _sample_unfinished_work(self) -> None:
        while True:
            self.queue.update_unfinished_work()
            await anyio.sleep(0.5)

    async def _worker(self) -> None:
        while True:
            try:
                request = await self.queue.get()
            except QueueShutDown:
                return
            if self._stopping:
                self.queue.done(request)
                return
            self.active += 1
            metrics.ACTIVE_WORKERS.labels(controller=self.name).inc()
            self._active_keys[request] = self._active_keys.get(request, 0) + 1
            self.max_active_per_key = max(self.max_active_per_key, self._active_keys[request])
            try:
                await self.process(request)
            finally:
                self._active_keys[request] -= 1
                if not self._active_keys[request]:
                    del self._active_keys[request]
                self.active -= 1
                metrics.ACTIVE_WORKERS.labels(controller=self.name).dec()
                self.queue.done(request)

    def _span(self, request: Request, obj: JsonObject | None) -> AbstractContextManager[trace.Span]:
        parent = tracing.carried_context(obj)
        return self._tracer.start_as_current_span(
            f"reconcile {self.name}",
            context=parent,
            attributes={
                **tracing.reconcile_attributes(self.name, request.namespace, request.name, self.for_.kind),
                "pyroclast.reconcile.id": str(uuid.uuid4()),
            },
            record_exception=False,
            set_status_on_exception=False,
        )

    async def _write_trace_context(self, request: Request, obj: JsonObject | None, span: trace.Span) -> None:
        if not self.trace_objects or obj is None or self._manager is None or not span.is_recording():
            return
        if tracing.carried_context(obj) is not None:
            return
        carrier = tracing.carrier_for(span)
        if carrier is None:
            return
        try:
            await self._manager.client.patch(
                self.for_, request.name, tracing.annotation_patch(carrier), request.namespace or None
            )
        except ApiError as err:
            log.info("could not write trace context on %s: %s", request, err)

    async def process(self, request: Request) -> None:
        """Reconcile one request and apply the result semantics (one worker iteration)."""
        started = time.monotonic()
        obj = self.get(request, copy=False) if self._manager is not None else None
        with self._span(request, obj) as span:
            await self._write_trace_context(request, obj, span)
            outcome = "success"
            try:
                scope = anyio.fail_after(self.reconcile_timeout) if self.reconcile_timeout else nullcontext()
                with scope:
                    result = await self.reconcile(request) or Result()
            except TerminalError as err:
                outcome = "error"
                metrics.TERMINAL_RECONCILE_ERRORS.labels(controller=self.name).inc()
                metrics.RECONCILE_ERRORS.labels(controller=self.name).inc()
                span.set_status(trace.StatusCode.ERROR, str(err))
                span.set_attribute("error.type", type(err.__cause__ or err).__name__)
                log.error("reconcile %s %s failed terminally: %s", self.name, request, err)
            except TimeoutError as err:
                outcome = "error"
                metrics.RECONCILE_TIMEOUTS.labels(controller=self.name).inc()
                metrics.RECONCILE_ERRORS.labels(controller=self.name).inc()
                span.set_status(trace.StatusCode.ERROR, "reconcile timed out")
                span.set_attribute("error.type", "timeout")
                self.queue.add_rate_limited(request)
                log.warning("reconcile %s %s timed out: %s", self.name, request, err)
            except Exception as err:
                outcome = "error"
                metrics.RECONCILE_ERRORS.labels(controller=self.name).inc()
                span.set_status(trace.StatusCode.ERROR, str(err))
                span.set_attribute("error.type", type(err).__name__)
                span.record_exception(err)
                self.queue.add_rate_limited(request)
                log.warning("reconcile %s %s failed: %s", self.name, request, err, exc_info=err)
            else:
                if result.requeue_after > 0:
                    outcome = "requeue_after"
                    self.queue.forget(request)
                    self.queue.add_after(request, result.requeue_after)
                elif result.requeue:
                    outcome = "requeue"
                    self.queue.add_rate_limited(request)
                else:
                    self.queue.forget(request)
            finally:
                metrics.RECONCILE_TIME.labels(controller=self.name).observe(time.monotonic() - started)
            metrics.RECONCILE_TOTAL.labels(controller=self.name, result=outcome).inc()

    async def drain(self) -> None:
        """Start no new reconcile; return once the in-flight ones are done."""
        self._stopping = True
        await self.queue.shut_down_with_drain()

"""Informer: a reflector feeding a :class:`~controller.runtime.cache.Cache` and fanning events out to
handlers.

Contract (as client-go's ``SharedInformer``):

* The cache is eventually consistent; per object, the states seen are a subsequence of the real
  ones. Handlers are called after the cache is updated, sequentially per handler, in order.
* A relist (after 410 or a broken watch) is diffed against the cache: new objects become
  ``add``, changed ones (``resourceVersion`` differs) ``update``, and objects missing from the
  list a ``delete`` with ``final_state_unknown=True`` carrying the last state seen.
* With ``resync_period`` every cached object is re-delivered as ``update`` (``old is obj``,
  ``resync=True``) without any API call.
* Handlers receive the cached object itself: they must not mutate it.
* ``compact=True`` keeps the cache as compact JSON bytes (see :class:`~controller.runtime.cache.Cache`).
* ``paged_first_list=True`` lists at ``""`` in pages first (see :mod:`~controller.runtime.reflector`): for
  large collections whose transform keeps a fraction of each object.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import anyio
from anyio.abc import TaskGroup

from controller.runtime import objects
from controller.runtime.backoff import Backoff
from controller.runtime.cache import Cache, IndexFunc, Transform, object_key, strip_managed_fields
from controller.runtime.client import Client, WatchEvent
from controller.runtime.objects import JsonObject
from controller.runtime.reflector import Reflector
from controller.runtime.resource import Resource

log = logging.getLogger(__name__)

EventType = Literal["add", "update", "delete"]


@dataclass(frozen=True, slots=True)
class InformerEvent:
    """One notification for a handler."""

    type: EventType
    obj: JsonObject
    old: JsonObject | None = None
    initial_list: bool = False
    final_state_unknown: bool = False
    resync: bool = False


Handler = Callable[[InformerEvent], Awaitable[None] | None]


class _Listener:
    """Sequential delivery to one handler through an unbounded buffer."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.buffer: deque[InformerEvent] = deque()
        self._wake = anyio.Event()
        self.delivered = 0

    def push(self, event: InformerEvent) -> None:
        self.buffer.append(event)
        self._wake.set()

    async def run(self) -> None:
        while True:
            while self.buffer:
                event = self.buffer.popleft()
                try:
                    result = self.handler(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("informer handler %r failed on %s event", self.handler, event.type)
                self.delivered += 1
            self._wake = anyio.Event()
            if not self.buffer:
                await self._wake.wait()


class Informer:
    """Watches one resource into a cache; notifies handlers of adds, updates and deletes."""

    def __init__(
        self,
        client: Client,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | Mapping[str, str] | None = None,
        field_selector: str | None = None,
        transform: Transform | None = strip_managed_fields,
        resync_period: float | None = None,
        watchdog_timeout: float = 90.0,
        page_size: int = 500,
        paged_first_list: bool = False,
        backoff: Backoff | None = None,
        compact: bool = False,
    ):
        self.resource = resource
        self.cache = Cache(transform, compact=compact)
        self.resync_period = resync_period
        self.reflector = Reflector(
            client,
            resource,
            self,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
            paged_first_list=paged_first_list,
            watchdog_timeout=watchdog_timeout,
            backoff=backoff,
        )
        self._listeners: list[_Listener] = []
        self._synced = anyio.Event()
        self._started = False
        self._task_group: TaskGroup | None = None

    @property
    def has_synced(self) -> bool:
        """True once the first LIST is in the cache and queued to every handler."""
        return self._synced.is_set()

    async def wait_synced(self, timeout_s: float | None = None) -> bool:
        """Wait for the first sync; False if ``timeout_s`` passed first."""
        with anyio.move_on_after(timeout_s if timeout_s is not None else float("inf")):
            await self._synced.wait()
        return self._synced.is_set()

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Add a custom index to the cache (allowed at any time)."""
        self.cache.add_index(name, func)

    def add_handler(self, handler: Handler) -> None:
        """Register a handler; if the cache already holds objects it first gets them as adds."""
        listener = _Listener(handler)
        self._listeners.append(listener)
        for obj in self.cache.list(copy=False):
            listener.push(InformerEvent("add", obj, initial_list=True))
        if self._started and self._task_group is not None:
            self._task_group.start_soon(listener.run)

    def _emit(self, event: InformerEvent) -> None:
        for listener in self._listeners:
            listener.push(event)

    @property
    def pending(self) -> int:
        """Notifications buffered and not yet delivered, over all handlers."""
        return sum(len(listener.buffer) for listener in self._listeners)

    async def run(self) -> None:
        """Run the reflector, the handlers and the resync timer until cancelled."""
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            self._started = True
            for listener in self._listeners:
                tg.start_soon(listener.run)
            if self.resync_period:
                tg.start_soon(self._resync_loop, self.resync_period)
            try:
                await self.reflector.run()
            finally:
                self._started = False

    async def _resync_loop(self, period: float) -> None:
        while True:
            await anyio.sleep(period * (0.9 + random.random() / 5))
            for obj in self.cache.list(copy=False):
                self._emit(InformerEvent("update", obj, old=obj, resync=True))

    # ReflectorSink

    def prepare(self, obj: JsonObject) -> JsonObject:
        """The cache's transform (the reflector applies it to each LIST page as it arrives)."""
        return self.cache.prepare(obj)

    def replace(self, items: list[JsonObject], resource_version: str) -> None:
        """Diff a full LIST (its items through :meth:`prepare` already) with the cache; emit the changes."""
        initial = not self._synced.is_set()
        seen: set[str] = set()
        for obj in items:
            key = object_key(obj)
            seen.add(key)
            if self.cache.version(key) == _rv(obj):
                continue
            old = self.cache.upsert(obj)
            if old is None:
                self._emit(InformerEvent("add", obj, initial_list=initial))
            else:
                self._emit(InformerEvent("update", obj, old=old))
        for key in self.cache:  # iterates a snapshot
            if key not in seen:
                gone = self.cache.remove(key)
                if gone is not None:
                    self._emit(InformerEvent("delete", gone, final_state_unknown=True))
        self.cache.resource_version = resource_version
        self._synced.set()

    def apply(self, event: WatchEvent) -> None:
        """Apply one watch event to the cache and emit it."""
        obj = self.cache.prepare(event.object)
        if event.type == "DELETED":
            old = self.cache.remove(object_key(obj))
            self._emit(InformerEvent("delete", obj, old=old))
        else:
            old = self.cache.upsert(obj)
            if old is None:
                self._emit(InformerEvent("add", obj))
            else:
                self._emit(InformerEvent("update", obj, old=old))
        self.cache.resource_version = _rv(obj)

    def bookmark(self, resource_version: str) -> None:
        """Record the RV a bookmark carried."""
        self.cache.resource_version = resource_version


def _rv(obj: JsonObject) -> str:
    return objects.resource_version(obj)

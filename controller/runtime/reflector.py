"""List-then-watch loop that keeps a :class:`ReflectorSink` in step with the API server.

Semantics follow client-go's reflector (``tools/cache/reflector.go``):

* First LIST at ``resourceVersion="0"`` (served from the watch cache), paged 500 at a time;
  later relists at the last synced RV, and at ``""`` (a quorum read) only after that RV was
  answered with 410 Gone/Expired. Each page is passed through the sink's ``prepare`` (the
  cache's transform) as it arrives, so at most one page of whole objects is alive at once:
  a LIST of 80,000 pods would otherwise hold ~1.5 GB of dicts before the first is pruned.
  But the watch cache answers ``"0"`` in one body whatever the limit (measured on the rig with the
  watch cache on), so ``paged_first_list=True`` makes the first LIST a paged read at ``""``
  instead: dearer for the apiserver, but the client never holds the whole list at once.
* WATCH from the list's RV with ``allowWatchBookmarks=true`` and ``timeoutSeconds`` drawn from
  U[300, 600]; a watch that ends normally is re-opened from the last RV without relisting.
* An in-stream 410 (or any other ERROR event) ends the watch and relists; a watch that could
  not start because of a connection failure or 429 backs off and re-watches without a relist.
* Between list-and-watch attempts: jittered exponential backoff 800 ms x2 up to 30 s.
* Going beyond client-go: a **watchdog** re-opens the watch when neither an event nor a
  bookmark has arrived for ``watchdog_timeout`` seconds (the apiserver bookmarks every ~60 s),
  so a silently stalled TCP stream cannot freeze the cache.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from controller.runtime import objects
from controller.runtime.backoff import Backoff
from controller.runtime.client import Client, WatchEvent
from controller.runtime.errors import ApiError, Gone, TooManyRequests, TransportError, error_from_status
from controller.runtime.objects import JsonObject
from controller.runtime.resource import Resource

log = logging.getLogger(__name__)


class ReflectorSink(Protocol):
    """Where the reflector delivers what it learns (the informer)."""

    def prepare(self, obj: JsonObject) -> JsonObject:
        """The listed object as it will be stored (the cache's transform), applied as pages arrive."""
        ...

    def replace(self, items: list[JsonObject], resource_version: str) -> None:
        """A complete LIST, every item already through :meth:`prepare`: the new truth."""
        ...

    def apply(self, event: WatchEvent) -> None:
        """One ADDED/MODIFIED/DELETED watch event."""
        ...

    def bookmark(self, resource_version: str) -> None:
        """A BOOKMARK: only the resourceVersion advanced."""
        ...


class _WatchEnded(Exception):
    """The watch must be replaced by a relist (410, ERROR event, very short watch)."""


@dataclass
class ReflectorStats:
    """Counters for tests and debugging."""

    lists: int = 0
    pages: int = 0
    watches: int = 0
    gone: int = 0
    watchdog_timeouts: int = 0
    errors: int = 0
    events: int = 0
    bookmarks: int = 0
    list_rvs: list[str] = field(default_factory=list[str])


class Reflector:
    """Runs list/watch for one resource (optionally one namespace and selectors) forever."""

    def __init__(
        self,
        client: Client,
        resource: Resource,
        sink: ReflectorSink,
        *,
        namespace: str | None = None,
        label_selector: str | Mapping[str, str] | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        paged_first_list: bool = False,
        min_watch_timeout: float = 300.0,
        watchdog_timeout: float = 90.0,
        backoff: Backoff | None = None,
    ):
        self.client = client
        self.resource = resource
        self.sink = sink
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.paged_first_list = paged_first_list
        self.min_watch_timeout = min_watch_timeout
        self.watchdog_timeout = watchdog_timeout
        self.backoff = backoff or Backoff()
        self.stats = ReflectorStats()
        self.last_sync_rv: str | None = None

    async def run(self) -> None:
        """List and watch until cancelled.

        Run again after a cancellation, it resumes: it first re-watches from the last synced
        RV (as after a dropped connection) and relists only if that RV is gone (410).
        """
        resume = self.last_sync_rv is not None
        while True:
            try:
                await self._list_and_watch(skip_list=resume)
            except ApiError as err:
                self.stats.errors += 1
                log.warning("list/watch %s failed: %s", self.resource, err)
            except _WatchEnded as err:
                log.info("watch of %s ended: %s; relisting", self.resource, err)
            resume = False
            await anyio.sleep(self.backoff.next())

    async def _list(self) -> None:
        # "0" (any cached state) before the first sync; then the last synced RV; "" only after a 410.
        # The watch cache answers "0" in one body, whatever the limit: a paged first list reads at "".
        first = "" if self.paged_first_list else "0"
        rv = first if self.last_sync_rv is None else self.last_sync_rv
        try:
            items, list_rv = await self._list_pages(rv)
        except Gone:  # the RV, or a continue token mid-way, expired
            self.stats.gone += 1
            rv = ""
            items, list_rv = await self._list_pages(rv)
        self.stats.lists += 1
        self.stats.list_rvs.append(rv)
        self.last_sync_rv = list_rv
        log.info("listed %d %s at RV %r (%d pages in all)", len(items), self.resource, rv, self.stats.pages)
        self.sink.replace(items, list_rv)

    async def _list_pages(self, rv: str) -> tuple[list[JsonObject], str]:
        """Every page of a LIST at `rv` (paged only at "" and "0"), each prepared as it arrives; the RV of
        the last page. ``resourceVersion`` goes with the first page only, as the API requires."""
        limit = self.page_size if rv in ("", "0") else None
        items: list[JsonObject] = []
        cont: str | None = None
        while True:
            page = await self.client.list_page(
                self.resource,
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                resource_version=rv if cont is None else None,
                limit=limit,
                continue_=cont,
            )
            self.stats.pages += 1
            raw: list[JsonObject] = page.pop("items", None) or []
            items.extend(self.sink.prepare(obj) for obj in raw)
            del raw  # the page's whole objects go now, before the next page is read
            meta: JsonObject = page.get("metadata") or {}
            rv_seen = str(meta.get("resourceVersion", ""))
            cont = meta.get("continue") or None
            if not cont:
                return items, rv_seen

    async def _list_and_watch(self, *, skip_list: bool = False) -> None:
        if not skip_list:
            await self._list()
        while True:
            try:
                await self._watch_once()
            except (TransportError, TooManyRequests) as err:
                # Could not (re)start the watch, or it broke mid-stream: back off, re-watch, no relist.
                log.info("watch of %s interrupted (%s); re-watching", self.resource, err)
                await anyio.sleep(self.backoff.next())
            except Gone as err:
                self.stats.gone += 1
                raise _WatchEnded(f"410 at RV {self.last_sync_rv}: {err.message}") from err

    async def _watch_once(self) -> None:
        timeout = int(self.min_watch_timeout * (1.0 + random.random()))
        started = time.monotonic()
        count, stalled = 0, False
        async with self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self.last_sync_rv,
            allow_bookmarks=True,
            timeout_seconds=timeout,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            read_timeout=timeout + self.watchdog_timeout,
        ) as events:
            self.stats.watches += 1
            count, stalled = await self._consume(events)
        if stalled:
            return
        if count == 0 and time.monotonic() - started < 1.0:
            raise _WatchEnded("very short watch: closed in under 1 s with no events")

    async def _consume(self, events: AsyncIterator[WatchEvent]) -> tuple[int, bool]:
        """Handle events until the stream ends; returns (events seen, stopped by the watchdog)."""
        count = 0
        iterator = aiter(events)
        while True:
            event: WatchEvent | None = None
            with anyio.move_on_after(self.watchdog_timeout):
                try:
                    event = await anext(iterator)
                except StopAsyncIteration:
                    return count, False
            if event is None:
                self.stats.watchdog_timeouts += 1
                log.warning(
                    "watch of %s silent for %.0f s (no event, no bookmark); reconnecting",
                    self.resource,
                    self.watchdog_timeout,
                )
                return count, True
            count += 1
            self._handle(event)

    def _handle(self, event: WatchEvent) -> None:
        if event.type == "ERROR":
            err = error_from_status(int(event.object.get("code", 500) or 500), event.object)
            if isinstance(err, Gone):
                raise err
            raise _WatchEnded(f"ERROR event: {err}")
        rv = objects.resource_version(event.object)
        if event.type == "BOOKMARK":
            self.stats.bookmarks += 1
            if rv:
                self.last_sync_rv = rv
                self.sink.bookmark(rv)
            return
        if event.type not in ("ADDED", "MODIFIED", "DELETED"):
            raise _WatchEnded(f"unexpected watch event type {event.type!r}")
        self.stats.events += 1
        self.sink.apply(event)
        if rv:
            self.last_sync_rv = rv

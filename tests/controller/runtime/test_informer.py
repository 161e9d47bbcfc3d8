"""Informer/reflector against the fake API server: sync, events, 410 relist, watchdog, retries, resync."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

import anyio
import pytest

from controller.runtime.backoff import Backoff
from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.informer import Informer, InformerEvent
from controller.runtime.resource import CONFIG_MAPS

API = "api/v1"


def cm(name: str, ns: str = "default", value: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {"v": value},
    }


def fast_backoff() -> Backoff:
    return Backoff(initial=0.001, cap=0.01, jitter=0.0)


class Recorder:
    def __init__(self) -> None:
        self.events: list[InformerEvent] = []

    def __call__(self, event: InformerEvent) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[InformerEvent]:
        return [e for e in self.events if e.type == kind]


async def eventually(pred: Callable[[], bool], within: float = 60.0) -> None:  # a hang guard only
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.005)


def mirror(informer: Informer) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in informer.cache:
        obj = informer.cache.get(key, copy=False)
        if obj is not None:
            out[key] = str(obj["data"]["v"])
    return out


def truth(fake: FakeApiServer) -> dict[str, str]:
    return {
        f"{ns}/{n}": str(o["data"]["v"]) for (ns, n), o in fake.objects.get((API, "configmaps"), {}).items()
    }


@contextlib.asynccontextmanager
async def make_rig() -> AsyncGenerator[tuple[FakeApiServer, Informer, Recorder]]:
    fake = FakeApiServer()
    for i in range(5):
        fake.put_object(API, "configmaps", cm(f"c{i}"))
    informer = Informer(Client(fake), CONFIG_MAPS, watchdog_timeout=0.3, backoff=fast_backoff(), page_size=2)
    recorder = Recorder()
    informer.add_handler(recorder)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        assert await informer.wait_synced(3)
        yield fake, informer, recorder
        tg.cancel_scope.cancel()


async def test_initial_list_at_rv0_then_watch_from_list_rv() -> None:
    async with make_rig() as (fake, informer, recorder):
        await _test_initial_list_at_rv0_then_watch_from_list_rv(fake, informer, recorder)


async def _test_initial_list_at_rv0_then_watch_from_list_rv(
    fake: FakeApiServer, informer: Informer, recorder: Recorder
) -> None:
    list_rv = str(fake.rv)  # what every page of the first LIST answers: nothing changes during this test
    await eventually(lambda: len(recorder.events) == 5)
    assert all(e.type == "add" and e.initial_list for e in recorder.events)
    await eventually(lambda: informer.reflector.stats.watches == 1)
    gets = [p for m, _, p in fake.requests if m == "GET"]
    first_watch = next(i for i, p in enumerate(gets) if p.get("watch") == "true")
    lists = gets[:first_watch]
    assert lists[0]["resourceVersion"] == "0"
    assert all("resourceVersion" not in p for p in lists[1:])  # continued pages carry none
    assert informer.reflector.stats.list_rvs == ["0"]
    watch = gets[first_watch]
    assert watch["resourceVersion"] == list_rv
    assert informer.cache.resource_version == list_rv
    assert watch["allowWatchBookmarks"] == "true"
    assert 300 <= int(watch["timeoutSeconds"]) <= 600


async def test_watch_events_update_cache_then_handlers() -> None:
    async with make_rig() as (fake, informer, recorder):
        await _test_watch_events_update_cache_then_handlers(fake, informer, recorder)


async def _test_watch_events_update_cache_then_handlers(
    fake: FakeApiServer, informer: Informer, recorder: Recorder
) -> None:
    await eventually(lambda: informer.reflector.stats.watches == 1)
    fake.put_object(API, "configmaps", cm("new"))
    fake.put_object(API, "configmaps", cm("c0", value="2"))
    fake.delete_object(API, "configmaps", "default", "c1")
    await eventually(lambda: len(recorder.events) == 8)
    assert [e.type for e in recorder.events[5:]] == ["add", "update", "delete"]
    update = recorder.events[6]
    assert update.old is not None
    assert update.old["data"]["v"] == "1"
    assert update.obj["data"]["v"] == "2"
    assert mirror(informer) == truth(fake)


async def test_410_relists_and_delivers_deletes_missed_while_disconnected() -> None:
    async with make_rig() as (fake, informer, recorder):
        await _test_410_relists_and_delivers_deletes_missed_while_disconnected(fake, informer, recorder)


async def _test_410_relists_and_delivers_deletes_missed_while_disconnected(
    fake: FakeApiServer, informer: Informer, recorder: Recorder
) -> None:
    await eventually(lambda: informer.reflector.stats.watches == 1)
    fake.stall_watches()  # disconnected in effect: changes are not seen
    fake.delete_object(API, "configmaps", "default", "c2")
    fake.put_object(API, "configmaps", cm("c3", value="9"))
    fake.put_object(API, "configmaps", cm("later"))
    fake.compact()
    fake.drop_watches()  # the re-watch at the old RV now answers 410
    await eventually(lambda: mirror(informer) == truth(fake))
    assert informer.reflector.stats.gone >= 1
    await eventually(lambda: informer.pending == 0)
    deletes = recorder.of("delete")
    assert [(d.obj["metadata"]["name"], d.final_state_unknown) for d in deletes] == [("c2", True)]
    assert deletes[0].obj["data"]["v"] == "1", "tombstone carries the last state seen"
    assert {e.obj["metadata"]["name"] for e in recorder.of("update")} == {"c3"}
    # first relist after 410 asks for the last synced RV, not "" (client-go); it fell back to "" here
    assert informer.reflector.stats.list_rvs[0] == "0"
    assert informer.reflector.stats.list_rvs[-1] == ""


async def test_in_stream_410_error_event_relists_at_last_rv() -> None:
    async with make_rig() as (fake, informer, _):
        await _test_in_stream_410_error_event_relists_at_last_rv(fake, informer, _)


async def _test_in_stream_410_error_event_relists_at_last_rv(
    fake: FakeApiServer, informer: Informer, _: Recorder
) -> None:
    await eventually(lambda: informer.reflector.stats.watches == 1)
    last = informer.reflector.last_sync_rv
    fake.expire_watches()
    await eventually(lambda: informer.reflector.stats.lists == 2)
    assert informer.reflector.stats.list_rvs[1] == last, "relist at the last synced RV first"
    fake.put_object(API, "configmaps", cm("after"))
    await eventually(lambda: mirror(informer) == truth(fake))


async def test_watchdog_reconnects_a_silent_stream() -> None:
    async with make_rig() as (fake, informer, _):
        await _test_watchdog_reconnects_a_silent_stream(fake, informer, _)


async def _test_watchdog_reconnects_a_silent_stream(
    fake: FakeApiServer, informer: Informer, _: Recorder
) -> None:
    await eventually(lambda: informer.reflector.stats.watches == 1)
    fake.stall_watches()
    fake.put_object(API, "configmaps", cm("unseen-until-reconnect"))
    await eventually(lambda: informer.reflector.stats.watchdog_timeouts >= 1)
    await eventually(lambda: mirror(informer) == truth(fake))
    assert informer.reflector.stats.lists == 1, "a watchdog reconnect re-watches without relisting"


async def test_bookmarks_keep_the_watchdog_quiet() -> None:
    async with make_rig() as (fake, informer, _):
        await _test_bookmarks_keep_the_watchdog_quiet(fake, informer, _)


async def _test_bookmarks_keep_the_watchdog_quiet(
    fake: FakeApiServer, informer: Informer, _: Recorder
) -> None:
    await eventually(lambda: informer.reflector.stats.watches == 1)
    for _round in range(8):
        fake.send_bookmarks()
        await anyio.sleep(0.1)
    assert informer.reflector.stats.watchdog_timeouts == 0
    assert informer.reflector.stats.bookmarks >= 8
    assert informer.reflector.last_sync_rv == str(fake.rv)


async def test_connection_drop_and_refused_rewatch_without_relist() -> None:
    async with make_rig() as (fake, informer, _):
        await _test_connection_drop_and_refused_rewatch_without_relist(fake, informer, _)


async def _test_connection_drop_and_refused_rewatch_without_relist(
    fake: FakeApiServer, informer: Informer, _: Recorder
) -> None:
    await eventually(lambda: informer.reflector.stats.watches == 1)
    fake.unreachable = True
    fake.drop_watches()
    await anyio.sleep(0.05)
    fake.put_object(API, "configmaps", cm("while-down"))
    fake.unreachable = False
    await eventually(lambda: mirror(informer) == truth(fake))
    assert informer.reflector.stats.lists == 1


async def test_429_at_watch_start_backs_off_and_rewatches() -> None:
    async with make_rig() as (fake, informer, _):
        await _test_429_at_watch_start_backs_off_and_rewatches(fake, informer, _)


async def _test_429_at_watch_start_backs_off_and_rewatches(
    fake: FakeApiServer, informer: Informer, _: Recorder
) -> None:
    await eventually(lambda: informer.reflector.stats.watches == 1)
    fake.fail_next(429, count=2, methods=("WATCH",))
    fake.drop_watches()
    fake.put_object(API, "configmaps", cm("x"))
    await eventually(lambda: mirror(informer) == truth(fake))
    assert informer.reflector.stats.lists == 1


async def test_resync_redelivers_cached_objects_as_updates() -> None:
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", cm("a"))
    informer = Informer(Client(fake), CONFIG_MAPS, resync_period=0.05, backoff=fast_backoff())
    recorder = Recorder()
    informer.add_handler(recorder)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await eventually(lambda: any(e.resync for e in recorder.events))
        tg.cancel_scope.cancel()
    resync = next(e for e in recorder.events if e.resync)
    assert resync.type == "update"
    assert resync.old is resync.obj
    assert not any(m == "GET" and p.get("watch") != "true" for m, _, p in fake.requests[1:]), "no API call"


async def test_handler_exceptions_are_isolated() -> None:
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", cm("a"))
    fake.put_object(API, "configmaps", cm("b"))
    informer = Informer(Client(fake), CONFIG_MAPS, backoff=fast_backoff())
    good = Recorder()

    def bad(event: InformerEvent) -> None:
        raise RuntimeError("boom")

    informer.add_handler(bad)
    informer.add_handler(good)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await eventually(lambda: len(good.events) == 2)
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("compact", [False, True])
async def test_resumed_informer_rewatches_then_relists_on_410(compact: bool) -> None:
    fake = FakeApiServer()
    for i in range(4):
        fake.put_object(API, "configmaps", cm(f"c{i}"))
    informer = Informer(Client(fake), CONFIG_MAPS, backoff=fast_backoff(), compact=compact)
    recorder = Recorder()
    informer.add_handler(recorder)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await eventually(lambda: informer.reflector.stats.watches == 1)
        tg.cancel_scope.cancel()
    fake.delete_object(API, "configmaps", "default", "c0")
    fake.put_object(API, "configmaps", cm("c1", value="2"))
    fake.compact()
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await eventually(lambda: mirror(informer) == truth(fake))
        await eventually(lambda: informer.pending == 0)
        tg.cancel_scope.cancel()
    assert informer.reflector.stats.lists == 2, "one relist, after the resumed watch got 410"
    assert informer.reflector.stats.gone == 2, "410 on the watch, then on the list at the last RV"
    assert informer.reflector.stats.list_rvs[-1] == "", "fell back to a quorum list"
    deletes = recorder.of("delete")
    assert [(d.obj["metadata"]["name"], d.final_state_unknown) for d in deletes] == [("c0", True)]

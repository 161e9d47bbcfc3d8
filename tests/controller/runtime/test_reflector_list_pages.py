"""The reflector passes each LIST page through the cache's transform as it arrives (at most one page of whole
objects alive), prepares each object once, and restarts a LIST whose continue token expired."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from controller.runtime.backoff import Backoff
from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.informer import Informer
from controller.runtime.objects import JsonObject
from controller.runtime.resource import CONFIG_MAPS

API = "api/v1"


def cm(i: int) -> JsonObject:
    return {
        "metadata": {"name": f"c{i:02d}", "namespace": "default"},
        "data": {"v": str(i), "bulk": "x" * 100},
    }


class Transform:
    """Drops ``data.bulk``; records how many LIST requests had been made when each object came."""

    def __init__(self, fake: FakeApiServer) -> None:
        self.fake = fake
        self.seen_at: list[int] = []

    def __call__(self, obj: JsonObject) -> JsonObject:
        self.seen_at.append(sum(1 for method, _, params in self.fake.requests if "watch" not in params))
        return {"metadata": obj["metadata"], "data": {"v": obj["data"]["v"]}}


async def _sync(fake: FakeApiServer, transform: Transform, *, paged_first_list: bool = False) -> Informer:
    informer = Informer(
        Client(fake),
        CONFIG_MAPS,
        transform=transform,
        page_size=4,
        paged_first_list=paged_first_list,
        backoff=Backoff(0.001, 0.01, jitter=0.0),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        assert await informer.wait_synced(3)
        tg.cancel_scope.cancel()
    return informer


@pytest.mark.parametrize("rv0_paginated", [True, False], ids=["rv0-from-cache-snapshot", "rv0-unpaginated"])
async def test_each_page_is_transformed_before_the_next_is_read(rv0_paginated: bool) -> None:
    fake = FakeApiServer()
    # etcd pages RV=0; the watch cache answers it whole (measured on the rig with the watch cache on)
    fake.watch_list_limit_ignored_for_rv0 = not rv0_paginated
    for i in range(10):
        fake.put_object(API, "configmaps", cm(i))
    transform = Transform(fake)
    informer = await _sync(fake, transform)
    assert len(transform.seen_at) == 10  # each object prepared once, not again in replace()
    if rv0_paginated:
        assert transform.seen_at == [1] * 4 + [2] * 4 + [3] * 2
    else:
        assert transform.seen_at == [1] * 10
    stored = informer.cache.get("default/c07", copy=False)
    assert stored is not None
    assert stored == {"metadata": stored["metadata"], "data": {"v": "7"}}
    assert len(informer.cache) == 10
    assert informer.reflector.stats.list_rvs == ["0"]
    assert informer.reflector.stats.pages == (3 if rv0_paginated else 1)


async def test_a_paged_first_list_reads_at_the_quorum_rv_in_pages_even_where_rv0_is_answered_whole() -> None:
    fake = FakeApiServer()
    fake.watch_list_limit_ignored_for_rv0 = True
    for i in range(10):
        fake.put_object(API, "configmaps", cm(i))
    transform = Transform(fake)
    informer = await _sync(fake, transform, paged_first_list=True)
    assert informer.reflector.stats.list_rvs == [""]
    assert transform.seen_at == [1] * 4 + [2] * 4 + [3] * 2
    assert len(informer.cache) == 10


async def test_an_expired_continue_token_restarts_the_list_as_a_quorum_read() -> None:
    fake = FakeApiServer()
    fake.watch_list_limit_ignored_for_rv0 = False
    for i in range(10):
        fake.put_object(API, "configmaps", cm(i))
    original = fake.request
    calls: list[dict[str, str]] = []

    async def request(method: str, path: str, **kwargs: Any) -> Any:
        params = dict(kwargs.get("params") or {})
        calls.append(params)
        if "continue" in params and len(calls) == 2:
            fake.fail_next(410, methods=("GET",))
        return await original(method, path, **kwargs)

    fake.request = request  # type: ignore[method-assign]
    informer = await _sync(fake, Transform(fake))
    assert informer.reflector.stats.gone == 1
    assert informer.reflector.stats.list_rvs == [""]
    assert calls[2].get("resourceVersion") == ""
    assert "continue" not in calls[2]
    assert sorted(informer.cache.keys()) == [f"default/c{i:02d}" for i in range(10)]

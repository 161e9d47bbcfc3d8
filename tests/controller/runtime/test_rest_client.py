"""Client over the fake API server: CRUD, paging, typed errors, metrics, kr8s path mapping."""

from __future__ import annotations

import pytest

from controller.runtime import metrics
from controller.runtime.client import Client
from controller.runtime.errors import (
    AlreadyExists,
    Conflict,
    Gone,
    NotFound,
    ServerError,
    TooManyRequests,
    error_from_status,
)
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.resource import CONFIG_MAPS, LEASES, NAMESPACES, Resource


def cm(name: str, ns: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {"a": "1"},
    }


def test_resource_paths() -> None:
    assert CONFIG_MAPS.path("ns") == "/api/v1/namespaces/ns/configmaps"
    assert CONFIG_MAPS.path("ns", "x", "status") == "/api/v1/namespaces/ns/configmaps/x/status"
    assert LEASES.path("ns", "l") == "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"
    assert NAMESPACES.path("ignored", "n") == "/api/v1/namespaces/n"
    tj = Resource("pyroclast.dev", "v1alpha1", "TorchJob", "torchjobs")
    assert tj.api_version == "pyroclast.dev/v1alpha1"
    assert tj.path() == "/apis/pyroclast.dev/v1alpha1/torchjobs"


def test_error_mapping() -> None:
    assert isinstance(error_from_status(404, b'{"reason":"NotFound"}'), NotFound)
    assert isinstance(error_from_status(409, b'{"reason":"AlreadyExists","code":409}'), AlreadyExists)
    assert isinstance(error_from_status(409, b'{"reason":"Conflict"}'), Conflict)
    assert isinstance(error_from_status(410, b""), Gone)
    assert isinstance(error_from_status(500, {"reason": "Expired", "code": 410}), Gone)
    assert isinstance(error_from_status(503, b"not json"), ServerError)
    assert error_from_status(429, b"{}").retriable


async def test_crud_and_typed_errors() -> None:
    fake = FakeApiServer()
    client = Client(fake)
    created = await client.create(CONFIG_MAPS, cm("x"))
    assert created["metadata"]["resourceVersion"]
    with pytest.raises(AlreadyExists):
        await client.create(CONFIG_MAPS, cm("x"))
    got = await client.get(CONFIG_MAPS, "x", "default")
    assert got["data"] == {"a": "1"}
    patched = await client.patch(CONFIG_MAPS, "x", {"data": {"b": "2", "a": None}}, "default")
    assert patched["data"] == {"b": "2"}
    stale = dict(got)
    with pytest.raises(Conflict):
        await client.replace(CONFIG_MAPS, stale)
    await client.delete(CONFIG_MAPS, "x", "default")
    with pytest.raises(NotFound):
        await client.get(CONFIG_MAPS, "x", "default")
    fake.fail_next(429)
    with pytest.raises(TooManyRequests):
        await client.get(CONFIG_MAPS, "y", "default")


async def test_list_pages_and_counts_requests() -> None:
    fake = FakeApiServer()
    client = Client(fake)
    for i in range(12):
        await client.create(CONFIG_MAPS, cm(f"c{i:02d}"))
    before = metrics.REGISTRY.get_sample_value(
        "rest_client_requests_total", {"code": "200", "method": "GET", "host": fake.host}
    )
    result = await client.list(CONFIG_MAPS, "default", page_size=5, resource_version="")
    assert [o["metadata"]["name"] for o in result.items] == [f"c{i:02d}" for i in range(12)]
    assert result.paginated
    assert result.resource_version == str(fake.rv)
    pages = [p for m, p, params in fake.requests if m == "GET" and "limit" in params]
    assert len(pages) == 3
    after = metrics.REGISTRY.get_sample_value(
        "rest_client_requests_total", {"code": "200", "method": "GET", "host": fake.host}
    )
    assert (after or 0) - (before or 0) == 3
    fake.compact()
    with pytest.raises(Gone):
        await client.list(CONFIG_MAPS, "default", resource_version="1")


async def test_watch_streams_events_with_bookmarks_param() -> None:
    fake = FakeApiServer()
    client = Client(fake)
    await client.create(CONFIG_MAPS, cm("a"))
    rv = str(fake.rv)
    async with client.watch(CONFIG_MAPS, "default", resource_version=rv, timeout_seconds=1) as events:
        await client.create(CONFIG_MAPS, cm("b"))
        fake.send_bookmarks()
        seen = [(e.type, e.object["metadata"].get("name")) async for e in events]
    assert seen == [("ADDED", "b"), ("BOOKMARK", None)]
    params = next(p for _, _, p in fake.requests if p.get("watch") == "true")
    assert params["allowWatchBookmarks"] == "true"
    assert params["resourceVersion"] == rv

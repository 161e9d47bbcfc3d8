"""Cache: keys, namespace and custom indexes, transform at ingest, copies on read."""

from __future__ import annotations

from typing import Any

import pytest

from controller.runtime.cache import Cache, deep_copy, label_index, object_key, owner_uid_index


def obj(ns: str, name: str, rv: str = "1", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "resourceVersion": rv, **meta}, "data": {"k": "v"}}


@pytest.mark.parametrize("compact", [False, True])
def test_keys_and_namespace_index(compact: bool) -> None:
    cache = Cache(compact=compact)
    cache.upsert(obj("a", "x"))
    cache.upsert(obj("a", "y"))
    cache.upsert(obj("b", "x"))
    cache.upsert({"metadata": {"name": "node-1"}})
    assert object_key(obj("a", "x")) == "a/x"
    assert object_key({"metadata": {"name": "node-1"}}) == "node-1"
    assert sorted(cache.keys()) == ["a/x", "a/y", "b/x", "node-1"]
    assert [o["metadata"]["name"] for o in cache.list("a")] == ["x", "y"]
    assert len(cache.list()) == 4
    cache.remove("a/x")
    assert [o["metadata"]["name"] for o in cache.list("a")] == ["y"]
    assert cache.get("a/x") is None


@pytest.mark.parametrize("compact", [False, True])
def test_custom_indexes_multi_valued_and_updated(compact: bool) -> None:
    cache = Cache(compact=compact)
    cache.add_index("owner", owner_uid_index)
    child = obj("a", "c1", ownerReferences=[{"uid": "u1"}, {"uid": "u2"}], labels={"job": "j1"})
    cache.upsert(child)
    assert cache.index_keys("owner", "u1") == ["a/c1"]
    assert cache.index_keys("owner", "u2") == ["a/c1"]
    cache.upsert(obj("a", "c1", rv="2", ownerReferences=[{"uid": "u3"}]))
    assert cache.index_keys("owner", "u1") == []
    assert cache.index_keys("owner", "u3") == ["a/c1"]
    cache.add_index("job", label_index("job"))  # built over existing items
    cache.upsert(obj("a", "c2", labels={"job": "j1"}))
    assert [o["metadata"]["name"] for o in cache.by_index("job", "j1")] == ["c2"]
    assert cache.index_values("job") == ["j1"]


@pytest.mark.parametrize("compact", [False, True])
def test_transform_strips_managed_fields_by_default(compact: bool) -> None:
    cache = Cache(compact=compact)
    raw = obj("a", "x", managedFields=[{"manager": "kubectl"}])
    cache.upsert(cache.prepare(raw))
    stored = cache.get("a/x")
    assert stored is not None
    assert "managedFields" not in stored["metadata"]
    keep = Cache(transform=None, compact=compact)
    keep.upsert(keep.prepare(obj("a", "x", managedFields=[{"manager": "kubectl"}])))
    kept = keep.get("a/x")
    assert kept is not None
    assert "managedFields" in kept["metadata"]


@pytest.mark.parametrize("compact", [False, True])
def test_reads_return_copies_that_cannot_mutate_the_cache(compact: bool) -> None:
    cache = Cache(compact=compact)
    cache.upsert(obj("a", "x", labels={"l": "1"}))
    got = cache.get("a/x")
    assert got is not None
    got["metadata"]["labels"]["l"] = "mutated"
    got["data"]["k"] = "mutated"
    for listed in cache.list("a"):
        listed["metadata"]["name"] = "mutated"
    fresh = cache.get("a/x")
    assert fresh is not None
    assert fresh["metadata"]["labels"]["l"] == "1"
    assert fresh["data"]["k"] == "v"
    assert cache.list(label_selector={"l": "1"})[0]["metadata"]["name"] == "x"
    assert (cache.get("a/x", copy=False) is cache.get("a/x", copy=False)) is not compact
    assert cache.version("a/x") == "1"


def test_deep_copy_shares_only_scalars() -> None:
    class Tagged(dict[str, Any]):
        pass

    tree: dict[str, Any] = {"a": [[1, {"b": "c"}], None, 2.5, True], "t": Tagged(x=[1]), "s": "v"}
    copied = deep_copy(tree)
    assert copied == tree
    copied["a"][0][1]["b"] = "mutated"
    copied["a"][0].append(3)
    copied["t"]["x"].append(2)
    assert tree == {"a": [[1, {"b": "c"}], None, 2.5, True], "t": {"x": [1]}, "s": "v"}


def test_compact_storage_is_bytes_and_reads_are_fresh() -> None:
    cache = Cache(compact=True)
    cache.upsert(obj("a", "x", rv="7"))
    assert isinstance(cache._items["a/x"], bytes)  # pyright: ignore[reportPrivateUsage]
    assert cache.version("a/x") == "7"
    old = cache.upsert(obj("a", "x", rv="8"))
    assert old is not None
    assert old["metadata"]["resourceVersion"] == "7"
    assert cache.remove("a/x") is not None
    assert cache.version("a/x") is None

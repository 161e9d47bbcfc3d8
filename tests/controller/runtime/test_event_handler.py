"""Event handlers: how an informer event, an update's old object included, maps to requests."""

from __future__ import annotations

from controller.runtime.handler import controller_reference, for_object, for_owner, from_map_func
from controller.runtime.informer import InformerEvent
from controller.runtime.objects import JsonObject
from controller.runtime.reconcile import Request
from controller.runtime.resource import CONFIG_MAPS


def cm(name: str, uid: str = "") -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns", "uid": uid},
    }


def owned_by(name: str, *owners: JsonObject) -> JsonObject:
    refs = [controller_reference(o) for o in owners]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "ns", "ownerReferences": refs},
    }


def test_an_owned_object_whose_owner_changed_enqueues_the_old_and_the_new_owner() -> None:
    before, after = owned_by("child", cm("a", "1")), owned_by("child", cm("b", "2"))
    handler = for_owner(CONFIG_MAPS)
    assert handler(InformerEvent("update", after, old=before)) == [Request("ns", "b"), Request("ns", "a")]
    assert handler(InformerEvent("update", after, old=after)) == [Request("ns", "b")], "each request once"
    assert handler(InformerEvent("add", after)) == [Request("ns", "b")]
    assert handler(InformerEvent("delete", before)) == [Request("ns", "a")]


def test_an_object_maps_to_itself_and_a_map_func_sees_the_old_object_too() -> None:
    obj = cm("x")
    assert for_object()(InformerEvent("update", obj, old=cm("ignored"))) == [Request("ns", "x")]

    def by_label(o: JsonObject) -> list[Request]:
        return [Request("ns", str(v)) for v in (o["metadata"].get("labels") or {}).values()]

    old: JsonObject = {"metadata": {"name": "x", "labels": {"for": "old"}}}
    new: JsonObject = {"metadata": {"name": "x", "labels": {"for": "new"}}}
    assert from_map_func(by_label)(InformerEvent("update", new, old=old)) == [
        Request("ns", "new"),
        Request("ns", "old"),
    ]
    assert from_map_func(by_label)(InformerEvent("add", new)) == [Request("ns", "new")]

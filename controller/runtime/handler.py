"""Map informer events to reconcile requests: the object itself, its owner, or any function.

A map function reads one object; an :data:`EventHandler` reads the whole event and so decides what an update
means for the old and the new object alike (controller-runtime's ``handler.EventHandler``). The controller
only queues what its handlers return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.runtime import objects
from controller.runtime.informer import InformerEvent
from controller.runtime.objects import JsonObject
from controller.runtime.reconcile import Request
from controller.runtime.resource import Resource

MapFunc = Callable[[JsonObject], Iterable[Request]]
EventHandler = Callable[[InformerEvent], list[Request]]
"""The requests one informer event asks for, each once, in a stable order."""


@dataclass(frozen=True, slots=True)
class MapHandler:
    """Requests from `map_func` applied to the event's object and, for an update when `map_old`, to the
    object before it too: an owned object whose owner reference changed concerns its old owner as much as
    its new one (controller-runtime's owner and map-func handlers do the same)."""

    map_func: MapFunc
    map_old: bool = True

    def __call__(self, event: InformerEvent) -> list[Request]:
        requests = list(self.map_func(event.obj))
        if self.map_old and event.type == "update" and event.old is not None:
            requests += self.map_func(event.old)
        return list(dict.fromkeys(requests))


def for_object() -> EventHandler:
    """The object's own request; an update never renames an object, so the old one adds nothing."""
    return MapHandler(enqueue_for_object, map_old=False)


def for_owner(owner: Resource, *, only_controller: bool = True) -> EventHandler:
    """The owners' requests (:func:`enqueue_for_owner`), of the old object too on an update."""
    return MapHandler(enqueue_for_owner(owner, only_controller=only_controller))


def from_map_func(map_func: MapFunc) -> EventHandler:
    """Any mapping, applied to the old object too on an update (what it maps to may have changed)."""
    return MapHandler(map_func)


def enqueue_for_object(obj: JsonObject) -> list[Request]:
    """The object's own ``namespace/name``."""
    return [Request(objects.namespace(obj), objects.name(obj))]


def enqueue_for_owner(owner: Resource, *, only_controller: bool = True) -> MapFunc:
    """Requests for the owners of kind ``owner`` named in an object's ``ownerReferences``.

    As controller-runtime's ``EnqueueRequestForOwner``: a reference matches on group and kind
    (the version is ignored); with ``only_controller`` only the ``controller: true`` reference
    counts. The owner's namespace is the child's (or none for cluster-scoped owners).
    """
    group, kind = owner.group_kind

    def map_owner(obj: JsonObject) -> list[Request]:
        out: list[Request] = []
        for ref in objects.owner_references(obj):
            if only_controller and not ref.get("controller"):
                continue
            api_version = str(ref.get("apiVersion", ""))
            ref_group = api_version.rpartition("/")[0]
            if ref.get("kind") != kind or ref_group != group:
                continue
            namespace = objects.namespace(obj) if owner.namespaced else ""
            out.append(Request(namespace, str(ref.get("name", ""))))
        return out

    return map_owner


def controller_reference(owner: JsonObject) -> JsonObject:
    """An ``ownerReference`` marking ``owner`` as the controller (``blockOwnerDeletion`` too)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }

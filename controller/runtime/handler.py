"""Map informer events to reconcile requests: the object itself, its owner, or any function."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from controller.runtime import objects
from controller.runtime.objects import JsonObject
from controller.runtime.reconcile import Request
from controller.runtime.resource import Resource

MapFunc = Callable[[JsonObject], Iterable[Request]]


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

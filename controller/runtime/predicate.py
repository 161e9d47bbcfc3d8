"""Event filters, as controller-runtime's ``predicate`` package.

A predicate sees an :class:`~controller.runtime.informer.InformerEvent` and says whether it should
enqueue anything. Adds and deletes pass the change predicates; updates are compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.runtime import objects
from controller.runtime.informer import InformerEvent

Predicate = Callable[[InformerEvent], bool]


def _meta(obj: dict[str, Any] | None) -> dict[str, Any]:
    return objects.metadata(obj)


def generation_changed(event: InformerEvent) -> bool:
    """Updates pass only when ``metadata.generation`` changed (status writes are filtered out)."""
    if event.type != "update":
        return True
    return _meta(event.obj).get("generation") != _meta(event.old).get("generation")


def resource_version_changed(event: InformerEvent) -> bool:
    """Updates pass only when ``resourceVersion`` changed (drops resyncs)."""
    if event.type != "update":
        return True
    return _meta(event.obj).get("resourceVersion") != _meta(event.old).get("resourceVersion")


def content_changed(event: InformerEvent) -> bool:
    """Updates pass only when something besides ``metadata.resourceVersion`` changed. Behind an informer
    transform that keeps only what the reconciler reads, an update that changed nothing kept (a pod's
    binding, a status field the transform drops) or a resync has nothing to tell."""
    if event.type != "update":
        return True
    return _versionless(event.obj) != _versionless(event.old)


def _versionless(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    meta = {k: v for k, v in _meta(obj).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


def labels_changed(event: InformerEvent) -> bool:
    """Updates pass only when labels changed."""
    if event.type != "update":
        return True
    return _meta(event.obj).get("labels") != _meta(event.old).get("labels")


def annotations_changed(event: InformerEvent) -> bool:
    """Updates pass only when annotations changed."""
    if event.type != "update":
        return True
    return _meta(event.obj).get("annotations") != _meta(event.old).get("annotations")


def any_of(*predicates: Predicate) -> Predicate:
    """Passes when at least one predicate passes."""
    return lambda event: any(p(event) for p in predicates)


def all_of(*predicates: Predicate) -> Predicate:
    """Passes when every predicate passes."""
    return lambda event: all(p(event) for p in predicates)


def negate(predicate: Predicate) -> Predicate:
    """Passes when ``predicate`` does not."""
    return lambda event: not predicate(event)

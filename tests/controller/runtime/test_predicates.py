"""Event filters: each change predicate passes adds and deletes, and updates only when its field changed."""

from __future__ import annotations

import pytest

from controller.runtime.informer import InformerEvent
from controller.runtime.objects import JsonObject
from controller.runtime.predicate import (
    Predicate,
    all_of,
    annotations_changed,
    any_of,
    content_changed,
    generation_changed,
    labels_changed,
    negate,
    resource_version_changed,
)


def obj(**meta: object) -> JsonObject:
    return {"metadata": {"name": "a", "generation": 1, "resourceVersion": "1", "labels": {}, **meta}}


def update(**meta: object) -> InformerEvent:
    return InformerEvent("update", obj(**meta), old=obj())


@pytest.mark.parametrize(
    ("predicate", "changed"),
    [
        (generation_changed, {"generation": 2}),
        (resource_version_changed, {"resourceVersion": "2"}),
        (labels_changed, {"labels": {"team": "a"}}),
        (annotations_changed, {"annotations": {"note": "x"}}),
    ],
)
def test_change_predicates_pass_adds_deletes_and_only_their_own_update(
    predicate: Predicate, changed: dict[str, object]
) -> None:
    assert predicate(InformerEvent("add", obj()))
    assert predicate(InformerEvent("delete", obj()))
    assert predicate(update(**changed))
    assert not predicate(update())
    others = {"generation": 3, "resourceVersion": "3", "labels": {"x": "y"}, "annotations": {"y": "z"}}
    unrelated = {k: v for k, v in others.items() if k not in changed}
    assert not predicate(update(**unrelated))


def test_status_writes_and_resyncs_are_filtered_as_controller_runtime_does() -> None:
    status_write = update(resourceVersion="2")  # the generation stays
    resync = InformerEvent("update", obj(), old=obj(), resync=True)
    assert not generation_changed(status_write)
    assert resource_version_changed(status_write)
    assert not resource_version_changed(resync)


def test_combinators() -> None:
    spec_or_labels = any_of(generation_changed, labels_changed)
    assert spec_or_labels(update(labels={"a": "b"}))
    assert not spec_or_labels(update(resourceVersion="2"))
    both = all_of(generation_changed, labels_changed)
    assert not both(update(generation=2))
    assert both(update(generation=2, labels={"a": "b"}))
    assert negate(labels_changed)(update(generation=2))
    assert not negate(labels_changed)(update(labels={"a": "b"}))


def test_content_changed_ignores_a_moved_version_and_resyncs_but_sees_any_other_change() -> None:
    pod = {"metadata": {"name": "p", "resourceVersion": "1"}, "status": {"phase": "Pending"}}
    bound = {"metadata": {"name": "p", "resourceVersion": "2"}, "status": {"phase": "Pending"}}
    running = {"metadata": {"name": "p", "resourceVersion": "3"}, "status": {"phase": "Running"}}
    deleting = {"metadata": {"name": "p", "resourceVersion": "4", "deletionTimestamp": "t"}, **running}
    deleting["metadata"] = {"name": "p", "resourceVersion": "4", "deletionTimestamp": "t"}
    assert content_changed(InformerEvent("add", pod))
    assert content_changed(InformerEvent("delete", pod))
    assert not content_changed(InformerEvent("update", bound, old=pod))
    assert not content_changed(InformerEvent("update", pod, old=pod, resync=True))
    assert content_changed(InformerEvent("update", running, old=bound))
    assert content_changed(InformerEvent("update", deleting, old=running))
    assert pod["metadata"]["resourceVersion"] == "1"  # the cached objects are left as they were

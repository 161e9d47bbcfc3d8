"""Per-resource informer options on the manager (controller-runtime's cache ``ByObject``): a transform and
compact storage, fixed where the informer is first requested."""

from __future__ import annotations

import pytest

from controller.runtime.cache import strip_managed_fields
from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.manager import Manager
from controller.runtime.objects import JsonObject
from controller.runtime.resource import CONFIG_MAPS, PODS


def only_name(obj: JsonObject) -> JsonObject:
    return {"metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"]}}


def manager() -> Manager:
    return Manager(Client(FakeApiServer()), metrics_bind_address="0")


def test_a_transform_and_compact_storage_apply_to_their_resource_only() -> None:
    mgr = manager()
    pods = mgr.informer(PODS, transform=only_name, compact=True)
    assert pods.cache.transform is only_name
    assert pods.cache.compact
    assert mgr.informer(PODS) is pods  # later users share it without restating the options
    assert mgr.informer(PODS, transform=only_name, compact=True) is pods
    other = mgr.informer(CONFIG_MAPS)
    assert other.cache.transform is strip_managed_fields
    assert not other.cache.compact
    stored = pods.cache.prepare({"metadata": {"name": "a", "namespace": "ns", "labels": {"x": "y"}}})
    assert stored == {"metadata": {"name": "a", "namespace": "ns"}}


@pytest.mark.parametrize(
    "options", [{"transform": strip_managed_fields}, {"compact": True}, {"paged_first_list": True}]
)
def test_other_options_for_an_existing_informer_are_an_error(options: JsonObject) -> None:
    mgr = manager()
    mgr.informer(PODS, transform=only_name)
    with pytest.raises(ValueError, match="already exists with other options"):
        mgr.informer(PODS, **options)

"""scheduling.queues: Queue objects from flags and YAML, and the patches `apply`/`update` send."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.queue import Queue
from scheduling.queues import (
    QueueSpecError,
    build_queue,
    parse_resources,
    queue_manifest,
    queues_from_yaml,
    spec_patch,
    update_patch,
)


def test_parse_resources_merges_items_and_pairs() -> None:
    got = parse_resources(["cpu=8, memory=32Gi", "nvidia.com/gpu=4", "cpu=16"], "--capability")
    assert got == {"cpu": "16", "memory": "32Gi", "nvidia.com/gpu": "4"}


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("gpu", "is not NAME=QUANTITY"),
        ("=4", "is not NAME=QUANTITY"),
        ("nvidia.com/gpu=lots", "not a quantity"),
    ],
)
def test_parse_resources_names_the_flag_and_the_fix(item: str, fragment: str) -> None:
    with pytest.raises(QueueSpecError) as exc:
        parse_resources([item], "--guarantee")
    assert str(exc.value).startswith("--guarantee: ")
    assert fragment in str(exc.value)


def test_build_queue_sets_only_given_fields() -> None:
    queue = build_queue(
        "team-a",
        weight=3,
        capability={"nvidia.com/gpu": "8"},
        guarantee={"nvidia.com/gpu": "2"},
        reclaimable=False,
        parent="research",
    )
    assert queue_manifest(queue) == {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "Queue",
        "metadata": {"name": "team-a"},
        "spec": {
            "weight": 3,
            "capability": {"nvidia.com/gpu": "8"},
            "guarantee": {"resource": {"nvidia.com/gpu": "2"}},
            "reclaimable": False,
            "parent": "research",
        },
    }


def test_build_queue_refuses_out_of_range_weight() -> None:
    with pytest.raises(QueueSpecError, match=r"^queue q: spec\.weight: must be at least 1, got 0$"):
        build_queue("q", weight=0)


@pytest.mark.parametrize(
    ("capability", "message"),
    [
        (
            "{cpu: lots}",
            "q.yaml document 1: spec.capability.cpu: must be a quantity such as 8, 500m or 16Gi, got 'lots'",
        ),
        ("{cpu: -2}", "q.yaml document 1: spec.capability.cpu: must be at least 0, got -2"),
    ],
)
def test_a_bad_quantity_in_yaml_names_the_field_and_what_is_expected(capability: str, message: str) -> None:
    text = f"kind: Queue\nmetadata: {{name: a}}\nspec: {{weight: 1, capability: {capability}}}\n"
    with pytest.raises(QueueSpecError) as exc:
        queues_from_yaml(text, source="q.yaml")
    assert str(exc.value) == message


def test_manifest_drops_status_and_server_metadata() -> None:
    queue = Queue.model_validate(
        {
            "metadata": {"name": "q", "uid": "u", "resourceVersion": "7", "labels": {"team": "a"}},
            "spec": {"weight": 2},
            "status": {"state": "Open"},
        }
    )
    assert queue_manifest(queue)["metadata"] == {"name": "q", "labels": {"team": "a"}}
    assert "status" not in queue_manifest(queue)


YAML = """\
apiVersion: scheduling.volcano.sh/v1beta1
kind: Queue
metadata: {name: a}
spec: {weight: 2, capability: {nvidia.com/gpu: 8}}
---
---
kind: List
items:
- kind: Queue
  metadata: {name: b}
"""


def test_queues_from_yaml_reads_documents_and_lists() -> None:
    queues = queues_from_yaml(YAML)
    assert [q.metadata.name for q in queues] == ["a", "b"]
    assert queues[0].spec.capability == {"nvidia.com/gpu": 8}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("kind: Queue\nspec: {}\n", "document 1: metadata.name is required"),
        ("kind: PodGroup\nmetadata: {name: a}\n", "only kind: Queue may be applied"),
        ("kind: Queue\nmetadata: {name: a}\nspec: {weight: 0}\n", "document 1: spec.weight"),
        ("kind: Queue\nmetadata: {name: a}\n---\nkind: Queue\nmetadata: {name: a}\n", "defined twice"),
        ("- a\n- b\n", "expected a Queue mapping"),
        ("kind: [\n", "not valid YAML"),
    ],
)
def test_queues_from_yaml_errors_name_document_and_field(text: str, fragment: str) -> None:
    with pytest.raises(QueueSpecError) as exc:
        queues_from_yaml(text, source="q.yaml")
    assert str(exc.value).startswith("q.yaml")
    assert fragment in str(exc.value)


def held(**spec: object) -> dict[str, object]:
    """A Queue as the apiserver returns it after the queue-controller ran (parent root, status set)."""
    return {
        "metadata": {"name": "a", "uid": "u"},
        "spec": {"parent": "root", **spec},
        "status": {"state": "Open"},
    }


def test_spec_patch_empty_when_equal_by_quantity_value() -> None:
    desired = queues_from_yaml(
        "kind: Queue\nmetadata: {name: a}\nspec: {weight: 2, capability: {memory: 1Gi}}\n"
    )
    assert spec_patch(desired[0], held(weight=2, capability={"memory": "1073741824"})) == {}


def test_spec_patch_ignores_unset_parent_and_fields() -> None:
    desired = queues_from_yaml("kind: Queue\nmetadata: {name: a}\nspec: {reclaimable: false}\n")[0]
    assert spec_patch(desired, held(weight=5, reclaimable=False)) == {}


def test_spec_patch_replaces_resource_maps_and_changes_scalars() -> None:
    desired = queues_from_yaml(
        "kind: Queue\nmetadata: {name: a}\n"
        "spec: {weight: 3, parent: research, capability: {cpu: 4}, guarantee: {resource: {cpu: 1}}}\n"
    )[0]
    current = held(
        weight=1, capability={"cpu": "4", "nvidia.com/gpu": "8"}, guarantee={"resource": {"gpu": "1"}}
    )
    assert spec_patch(desired, current) == {
        "spec": {
            "weight": 3,
            "parent": "research",
            "capability": {"nvidia.com/gpu": None, "cpu": 4},
            "guarantee": {"resource": {"gpu": None, "cpu": 1}},
        }
    }


def test_spec_patch_sets_map_absent_on_the_server() -> None:
    desired = build_queue("a", capability={"cpu": "2"})
    assert spec_patch(desired, held()) == {"spec": {"capability": {"cpu": "2"}}}


def test_update_patch_merges_given_fields() -> None:
    assert update_patch(weight=4, capability={"nvidia.com/gpu": "8"}, reclaimable=True) == {
        "spec": {"weight": 4, "capability": {"nvidia.com/gpu": "8"}, "reclaimable": True}
    }


def test_update_patch_without_changes_lists_the_flags() -> None:
    with pytest.raises(QueueSpecError, match="nothing to update: give at least one of --weight"):
        update_patch()


def test_example_queues_file_parses() -> None:
    path = Path(__file__).parents[2] / "deploy" / "examples" / "queues.yaml"
    queues = queues_from_yaml(path.read_text(), source=str(path))
    assert [(q.metadata.name, q.spec.weight, q.spec.reclaimable) for q in queues] == [
        ("research", 3, True),
        ("production", 5, False),
    ]
    assert all(q.spec.guarantee and q.spec.guarantee.resource for q in queues)

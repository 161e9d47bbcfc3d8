"""ParsedJobs: a TorchJob is parsed once per uid and resourceVersion, and never shares the cache's dicts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from controller.torchjob.parsed import ParsedJobs

KEY = "team-a/llama"


def raw(version: str, *, uid: str = "uid-1", count: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": "llama", "namespace": "team-a", "uid": uid, "resourceVersion": version},
        "spec": {"image": "img:1", "command": ["-m", "train"], "nodes": {"count": count}},
    }


def get(memo: ParsedJobs, obj: dict[str, Any]) -> Any:
    return memo.get(KEY, obj, lambda: copy.deepcopy(obj))


def test_the_same_version_is_parsed_once() -> None:
    memo = ParsedJobs()
    obj = raw("5")
    first = get(memo, obj)
    assert get(memo, obj) is first
    assert get(memo, raw("5")) is first
    assert (memo.hits, memo.misses) == (2, 1)
    assert len(memo) == 1


def test_a_new_resource_version_is_parsed_afresh() -> None:
    memo = ParsedJobs()
    old = get(memo, raw("5", count=2))
    new = get(memo, raw("6", count=4))
    assert new is not old
    assert (old.spec.nodes.count, new.spec.nodes.count) == (2, 4)
    assert get(memo, raw("6", count=4)) is new
    assert len(memo) == 1


def test_a_recreated_job_with_the_same_version_string_is_parsed_afresh() -> None:
    memo = ParsedJobs()
    old = get(memo, raw("5", uid="uid-1"))
    new = get(memo, raw("5", uid="uid-2"))
    assert new is not old
    assert new.metadata.uid == "uid-2"


def test_an_object_without_a_resource_version_is_never_reused() -> None:
    memo = ParsedJobs()
    obj = raw("")
    assert get(memo, obj) is not get(memo, obj)
    assert memo.hits == 0


def test_the_model_shares_nothing_with_the_cached_object() -> None:
    memo = ParsedJobs()
    obj = raw("5")
    job = get(memo, obj)
    obj["spec"]["command"].append("--oops")
    assert job.spec.command == ["-m", "train"]


def test_a_job_that_does_not_parse_leaves_no_entry() -> None:
    memo = ParsedJobs()
    get(memo, raw("5"))
    bad = raw("6")
    bad["spec"]["nodes"] = {"count": "many"}
    for _ in range(2):
        with pytest.raises(ValidationError, match=r"nodes\.count"):
            get(memo, bad)
    assert len(memo) == 0
    assert memo.misses == 3


def test_forget_drops_the_entry() -> None:
    memo = ParsedJobs()
    first = get(memo, raw("5"))
    memo.forget(KEY)
    memo.forget(KEY)  # twice is harmless
    assert len(memo) == 0
    assert get(memo, raw("5")) is not first

"""ParsedJobs keeps the models of the jobs used last, up to its limit (a model is ~12 KB)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controller.torchjob.parsed import ParsedJobs


def raw(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}", "resourceVersion": "5"},
        "spec": {"image": "img:1", "command": ["-m", "train"], "nodes": {"count": 2}},
    }


def get(memo: ParsedJobs, name: str) -> Any:
    obj = raw(name)
    return memo.get(f"team-a/{name}", obj, lambda: copy.deepcopy(obj))


def test_the_least_recently_used_model_goes_first() -> None:
    memo = ParsedJobs(limit=2)
    a = get(memo, "a")
    get(memo, "b")
    assert get(memo, "a") is a  # a is now the most recently used
    get(memo, "c")  # evicts b
    assert len(memo) == 2
    assert get(memo, "a") is a
    assert (memo.hits, memo.misses) == (2, 3)
    get(memo, "b")
    assert (memo.hits, memo.misses) == (2, 4)
    assert len(memo) == 2


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit must be >= 1"):
        ParsedJobs(limit=0)

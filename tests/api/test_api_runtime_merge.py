"""The runtime ⊕ job merge (pure): property tests over random runtimes and jobs, and worked examples."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import TorchJob, is_reserved_env
from api.constants import RESERVED_VOLUME_PREFIX
from api.crd import torchjob_schema
from api.runtime_merge import (
    MISSING,
    LockedField,
    effective_spec,
    lookup,
    merge,
    parse_path,
    schema_defaults,
    strip_defaults,
)

DEFAULTS = schema_defaults(torchjob_schema()["properties"]["spec"])
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RUNTIME = "ClusterTorchRuntime/gpu"

ENV_NAMES = ("NCCL_DEBUG", "NCCL_IB_HCA", "GLOO_SOCKET_IFNAME", "PET_NNODES")
VOLUME_NAMES = ("datasets", "cache", "pyroclast-checkpoint")
LOCKABLE = (
    "image",
    "scheduling.queue",
    "scheduling.priorityClassName",
    "env[NCCL_IB_HCA]",
    "env",
    "template.spec.tolerations",
    "template.spec.volumes[datasets]",
    "template.spec.nodeSelector",
    "failurePolicy.maxFailureRestarts",
)

words = st.sampled_from(("a", "b", "c"))


def _named(names: tuple[str, ...], item: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.tuples(st.sampled_from(names), item), max_size=4, unique_by=lambda t: t[0]).map(
        lambda pairs: [{"name": n, **body} for n, body in pairs]
    )


def _env(names: tuple[str, ...]) -> st.SearchStrategy[list[Any]]:
    return _named(names, st.fixed_dictionaries({"value": words}))


def _volumes(names: tuple[str, ...]) -> st.SearchStrategy[list[Any]]:
    return _named(
        names,
        st.one_of(
            st.just({"emptyDir": {}}),
            st.builds(lambda c: {"persistentVolumeClaim": {"claimName": c}}, words),
        ),
    )


tolerations = st.lists(
    st.fixed_dictionaries({"key": words, "operator": st.just("Exists")}),
    max_size=3,
    unique_by=lambda t: t["key"],
)


def _specs(owned: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Partial specs; with `owned`, also operator-owned names (a runtime's are not checked at admission, a
    job's are refused there, so jobs never carry them)."""
    env_names = ENV_NAMES if owned else ENV_NAMES[:-1]
    volume_names = VOLUME_NAMES if owned else VOLUME_NAMES[:-1]
    labels = ("team", "pyroclast.dev/job-name") if owned else ("team",)
    template = st.fixed_dictionaries(
        {},
        optional={
            "spec": st.fixed_dictionaries(
                {},
                optional={
                    "volumes": _volumes(volume_names),
                    "tolerations": tolerations,
                    "nodeSelector": st.dictionaries(words, words, max_size=2),
                },
            ),
            "metadata": st.fixed_dictionaries(
                {},
                optional={"labels": st.dictionaries(st.sampled_from(labels), words)},
            ),
        },
    )
    parts = {
        "image": st.sampled_from(("img:1", "img:2")),
        "args": st.lists(words, max_size=3),
        "env": _env(env_names),
        "template": template,
        "scheduling": st.fixed_dictionaries(
            {}, optional={"queue": st.sampled_from(("default", "gpu", "cpu")), "priorityClassName": words}
        ),
        "failurePolicy": st.fixed_dictionaries({}, optional={"maxFailureRestarts": st.integers(0, 5)}),
        "nprocPerNode": st.sampled_from(("auto", 1, 2)),
    }
    return st.fixed_dictionaries({}, optional=parts)


runtimes = st.fixed_dictionaries(
    {"defaults": _specs(owned=True)},
    optional={"locked": st.lists(st.sampled_from(LOCKABLE), max_size=3, unique=True)},
)
jobs = _specs(owned=False).map(lambda s: {"command": ["train.py"], "runtimeRef": {"name": "gpu"}, **s})


def _owned_removed(defaults: dict[str, Any]) -> dict[str, Any]:
    """What the runtime may contribute: its defaults without operator-owned entries (spelled out here)."""
    out = copy.deepcopy(defaults)
    if "env" in out:
        out["env"] = [e for e in out["env"] if not is_reserved_env(e["name"])]
    tpl_spec = out.get("template", {}).get("spec", {})
    if "volumes" in tpl_spec:
        tpl_spec["volumes"] = [
            v for v in tpl_spec["volumes"] if not v["name"].startswith(RESERVED_VOLUME_PREFIX)
        ]
    labels = out.get("template", {}).get("metadata", {}).get("labels")
    if labels is not None:
        out["template"]["metadata"]["labels"] = {
            k: v for k, v in labels.items() if not k.startswith("pyroclast.dev/")
        }
    return out


def _leaves(doc: Any, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """Scalar leaves by path; a named list item is one leaf (it is merged whole), so is an unnamed one."""
    out: dict[tuple[Any, ...], Any] = {}
    if isinstance(doc, dict):  # an empty object adds nothing to a merge
        for k, v in doc.items():
            out.update(_leaves(v, (*prefix, k)))
    elif isinstance(doc, list) and doc and all(isinstance(i, dict) for i in doc):
        for i in doc:
            out[(*prefix, ("name", i["name"]) if "name" in i else ("item", repr(sorted(i.items()))))] = i
    else:
        out[prefix] = doc
    return out


def _locked_prefix(path: tuple[Any, ...], locked: list[str]) -> bool:
    for entry in locked:
        want: list[Any] = []
        for seg in parse_path(entry):
            want.append(seg.field)
            if seg.item is not None:
                want.append(("name", seg.item))
        if tuple(path[: len(want)]) == tuple(want):
            return True
    return False


@SETTINGS
@given(runtimes, jobs)
def test_merge_properties(runtime: dict[str, Any], job: dict[str, Any]) -> None:
    locked = runtime.get("locked", [])
    base = _owned_removed(runtime["defaults"])
    mine = strip_defaults({k: v for k, v in job.items() if k != "runtimeRef"}, DEFAULTS)
    overridden = [
        p
        for p in locked
        if lookup(mine, parse_path(p)) is not MISSING
        and lookup(mine, parse_path(p)) != lookup(base, parse_path(p))
    ]
    if overridden:  # refused exactly when the job sets a locked path to something else; the message names it
        with pytest.raises(LockedField) as info:
            effective_spec(RUNTIME, runtime, job, DEFAULTS)
        assert info.value.path == overridden[0]
        assert f"spec.{overridden[0]} is locked by {RUNTIME}" in str(info.value)
        return
    out = effective_spec(RUNTIME, runtime, job, DEFAULTS)
    for path in locked:  # locked fields always take the runtime's value (or stay unset)
        assert lookup(out, parse_path(path)) == lookup(base, parse_path(path))
    assert out["runtimeRef"] == job["runtimeRef"]  # operator-owned: the job's own reference
    for e in out.get("env", []):  # operator-owned: the runtime sets no reserved variable
        assert not is_reserved_env(e["name"])
    for v in out.get("template", {}).get("spec", {}).get("volumes", []):
        assert not v["name"].startswith(RESERVED_VOLUME_PREFIX)
    assert not any(
        k.startswith("pyroclast.dev/") for k in out.get("template", {}).get("metadata", {}).get("labels", {})
    )
    got = _leaves(out)
    mine_leaves = _leaves(mine)
    for path, value in mine_leaves.items():  # job values win where allowed
        if value != [] and not _locked_prefix(path, locked):  # [] adds no item to a list merged by item
            assert got.get(path, MISSING) == value, path
    for path, value in _leaves(base).items():  # nothing else of the runtime is dropped
        replaced = any(p == path[: len(p)] for p in mine_leaves if len(p) < len(path))
        if value != [] and path not in mine_leaves and not replaced and not _locked_prefix(path, locked):
            assert got.get(path, MISSING) == value, path
    for key in ("env",):  # lists merged by name: each name once, the runtime's order first
        names = [e["name"] for e in out.get(key, [])]
        assert len(names) == len(set(names))


@SETTINGS
@given(runtimes, jobs)
def test_merge_is_pure_and_deterministic(runtime: dict[str, Any], job: dict[str, Any]) -> None:
    before = copy.deepcopy((runtime, job))
    try:
        first = effective_spec(RUNTIME, runtime, job, DEFAULTS)
    except LockedField:
        assert (runtime, job) == before
        return
    assert (runtime, job) == before
    assert effective_spec(RUNTIME, runtime, job, DEFAULTS) == first


def test_named_lists_merge_by_name_and_the_job_item_wins_whole() -> None:
    runtime = {
        "defaults": {
            "env": [{"name": "NCCL_DEBUG", "value": "WARN"}, {"name": "NCCL_IB_HCA", "value": "mlx5"}]
        }
    }
    job = {
        "env": [
            {"name": "NCCL_DEBUG", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            {"name": "X", "value": "1"},
        ]
    }
    out = effective_spec(RUNTIME, runtime, job, DEFAULTS)
    assert out["env"] == [
        {"name": "NCCL_DEBUG", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        {"name": "NCCL_IB_HCA", "value": "mlx5"},
        {"name": "X", "value": "1"},
    ]


def test_unnamed_lists_are_joined_and_scalar_lists_replaced() -> None:
    assert merge([{"key": "gpu"}], [{"key": "gpu"}, {"key": "spot"}]) == [{"key": "gpu"}, {"key": "spot"}]
    assert merge(["--a"], ["--b"]) == ["--b"]


def test_schema_defaults_of_the_job_do_not_hide_the_runtime() -> None:
    """The apiserver writes the schema's defaults (queue: default) into every job; the runtime's apply."""
    runtime = {"defaults": {"scheduling": {"queue": "gpu"}, "failurePolicy": {"maxFailureRestarts": 10}}}
    stored = TorchJob.model_validate(
        {"spec": {"image": "i", "command": ["t.py"], "runtimeRef": {"name": "gpu"}}}
    ).to_k8s()["spec"]
    assert stored["scheduling"]["queue"] == "default"
    out = effective_spec(RUNTIME, runtime, stored, DEFAULTS)
    job = TorchJob.model_validate({"spec": out})
    assert job.spec.scheduling.queue == "gpu"
    assert job.spec.failure_policy.max_failure_restarts == 10
    assert job.spec.runtime_ref is not None
    assert job.spec.runtime_ref.name == "gpu"


def test_a_locked_item_of_a_named_list_is_refused_by_name() -> None:
    runtime = {
        "defaults": {"env": [{"name": "NCCL_IB_HCA", "value": "mlx5"}]},
        "locked": ["env[NCCL_IB_HCA]"],
    }
    assert effective_spec(RUNTIME, runtime, {"env": [{"name": "OTHER", "value": "1"}]}, DEFAULTS)["env"] == [
        {"name": "NCCL_IB_HCA", "value": "mlx5"},
        {"name": "OTHER", "value": "1"},
    ]
    with pytest.raises(LockedField, match=r"spec\.env\[NCCL_IB_HCA\] is locked by ClusterTorchRuntime/gpu"):
        effective_spec(RUNTIME, runtime, {"env": [{"name": "NCCL_IB_HCA", "value": "mlx4"}]}, DEFAULTS)


@pytest.mark.parametrize("path", ["", "env[", "a..b", "env[x]]", "9lives"])
def test_malformed_locked_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="not of the form"):
        parse_path(path)

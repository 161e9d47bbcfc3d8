"""The runtime models and CRDs: valid runtimes parse, invalid ones are refused by the models and by the CRD's
own rules (run in-process here; the cluster suite runs them on a real apiserver)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api import TorchJob
from api.crd import render_runtime, torchjob_schema
from api.runtime import ClusterTorchRuntime, RuntimeKind, TorchRuntime, TorchRuntimeSpec
from api.runtime_crd import runtime_crd
from api.structural import structural_violations
from tests.api.api_cases import (
    GENERIC,
    INVALID_RUNTIME_CASES,
    InvalidRuntimeCase,
    base_job,
    base_runtime,
)
from tests.api.api_cel import evaluate

JOB_SPEC = torchjob_schema()["properties"]["spec"]


@pytest.mark.parametrize("kind", list(RuntimeKind))
def test_runtime_crds_are_structural_and_scoped(kind: RuntimeKind) -> None:
    crd = runtime_crd(kind, JOB_SPEC)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert structural_violations(schema) == []
    assert crd["spec"]["scope"] == ("Cluster" if kind == RuntimeKind.CLUSTER else "Namespaced")
    assert crd["spec"]["names"]["kind"] == kind
    assert render_runtime(kind) == render_runtime(kind)


def test_defaults_take_every_job_spec_field_loosened() -> None:
    """A spec field added to TorchJob is accepted in a runtime with the same type checks, nothing required,
    nothing defaulted, no CEL rule (they compare fields a partial spec may leave out)."""
    schema = runtime_crd(RuntimeKind.CLUSTER, JOB_SPEC)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    defaults = schema["properties"]["spec"]["properties"]["defaults"]
    assert set(defaults["properties"]) == set(JOB_SPEC["properties"]) - {"runtimeRef"}
    text = repr(defaults)
    assert "'default':" not in text
    assert "x-kubernetes-validations" not in text
    assert "required" not in defaults
    env_items = defaults["properties"]["env"]["items"]
    assert env_items["required"] == ["name"]  # a list-map key stays required


@pytest.mark.parametrize("kind", [ClusterTorchRuntime, TorchRuntime])
def test_base_runtime_parses(kind: type[ClusterTorchRuntime | TorchRuntime]) -> None:
    runtime = kind.from_k8s(base_runtime(kind=kind.__name__))
    assert runtime.spec.locked == ["scheduling.queue", "env[NCCL_IB_HCA]"]
    assert len(runtime.spec.digest()) == 16
    verdict = evaluate(_schema(), base_runtime())
    assert verdict.failures == []


def _schema() -> dict[str, Any]:
    return runtime_crd(RuntimeKind.CLUSTER, JOB_SPEC)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_digest_ignores_key_order() -> None:
    a = TorchRuntimeSpec.model_validate({"defaults": {"image": "i", "args": ["x"]}, "locked": ["image"]})
    b = TorchRuntimeSpec.model_validate({"locked": ["image"], "defaults": {"args": ["x"], "image": "i"}})
    c = TorchRuntimeSpec.model_validate({"locked": ["image"], "defaults": {"args": ["y"], "image": "i"}})
    assert a.digest() == b.digest() != c.digest()


@pytest.mark.parametrize("case", INVALID_RUNTIME_CASES, ids=lambda c: c.id)
def test_models_refuse_invalid_runtime(case: InvalidRuntimeCase) -> None:
    with pytest.raises(ValidationError) as info:
        ClusterTorchRuntime.from_k8s(case.manifest())
    problem = case.expect[-1]
    if not any(g in problem for g in GENERIC):
        assert problem in str(info.value)
        assert any(problem in f for f in evaluate(_schema(), case.manifest()).failures)


def test_a_job_may_leave_the_image_to_its_runtime() -> None:
    doc = base_job()
    del doc["spec"]["image"]
    assert any("spec.image is required" in f for f in evaluate(torchjob_schema(), doc).failures)
    doc["spec"]["runtimeRef"] = {"name": "gpu"}
    assert evaluate(torchjob_schema(), doc).failures == []
    assert TorchJob.model_validate(doc).spec.image is None

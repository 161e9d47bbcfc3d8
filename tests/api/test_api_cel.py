"""The CRD's CEL rules run in-process: they refuse what the table expects and pass what the models accept."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from api import TorchJob
from api.crd import torchjob_schema
from tests.api.api_cases import GENERIC, INVALID_CASES, InvalidCase, base_job
from tests.api.api_cel import K8S_ONLY, evaluate
from tests.api.api_defaults import apply_defaults
from tests.api.api_strategies import torchjob_manifest, torchjob_specs

SCHEMA = torchjob_schema()

# Cases refused by a CEL rule we can run here (not by an OpenAPI check, not by a Kubernetes-only function).
CEL_CASES = [
    c
    for c in INVALID_CASES
    if not any(g in c.expect[-1] for g in GENERIC) and c.id != "resources-request-above-limit"
]


def test_cel_cases_are_most_of_the_custom_checks() -> None:
    assert len(CEL_CASES) >= 15


@pytest.mark.parametrize("case", CEL_CASES, ids=lambda c: c.id)
def test_rule_refuses_invalid_job(case: InvalidCase) -> None:
    doc = apply_defaults(SCHEMA, case.manifest())
    failures = evaluate(SCHEMA, doc).failures
    assert any(case.expect[-1] in f for f in failures), failures


def test_base_job_passes_every_rule() -> None:
    verdict = evaluate(SCHEMA, apply_defaults(SCHEMA, base_job()))
    assert verdict.failures == []
    assert verdict.skipped == sum(1 for _ in K8S_ONLY)  # the resources rule, present in the base job


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(torchjob_specs())
def test_rules_pass_whatever_the_models_accept(spec: dict[str, Any]) -> None:
    doc = torchjob_manifest(spec)
    try:
        TorchJob.model_validate(doc)
    except ValidationError:
        return
    assert evaluate(SCHEMA, apply_defaults(SCHEMA, doc)).failures == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image": "other:2"}, "image and nprocPerNode can only change while the job is suspended"),
        ({"nodes": {"count": 2, "min": 1, "max": 2}}, "nodes.min is immutable"),
        ({"scheduling": {"queue": "other"}}, "scheduling.queue is immutable"),
        ({"checkpoint": {"volume": {"emptyDir": {}}, "path": "/other"}}, "checkpoint.path is immutable"),
        ({"nodes": {"count": 1}}, None),
        ({"args": ["--resume"]}, None),
    ],
)
def test_transition_rules_match_the_models(change: dict[str, Any], message: str | None) -> None:
    old = apply_defaults(SCHEMA, base_job())
    new = apply_defaults(SCHEMA, {**base_job(), "spec": {**base_job()["spec"], **change}})
    failures = evaluate(SCHEMA, new, old).failures
    model = TorchJob.model_validate(new).update_errors(TorchJob.model_validate(old))
    if message is None:
        assert failures == []
        assert model == []
    else:
        assert message in failures
        assert message in model

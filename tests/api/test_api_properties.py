"""Property tests over random TorchJob specs: the models never crash, round-trip, and default like the CRD."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from api import TorchJob
from api.crd import torchjob_schema
from tests.api.api_defaults import apply_defaults
from tests.api.api_strategies import torchjob_manifest, torchjob_specs

SCHEMA = torchjob_schema()
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse(spec: dict[str, Any]) -> TorchJob | None:
    try:
        return TorchJob.model_validate(torchjob_manifest(spec))
    except ValidationError:
        return None


@SETTINGS
@given(torchjob_specs())
def test_models_answer_with_a_verdict(spec: dict[str, Any]) -> None:
    # Any other exception type (a Decimal error, a KeyError in a validator) would escape here and fail.
    _parse(spec)


@SETTINGS
@given(torchjob_specs())
def test_valid_specs_round_trip(spec: dict[str, Any]) -> None:
    job = _parse(spec)
    if job is None:
        return
    wire = job.to_k8s()
    again = TorchJob.model_validate(wire)
    assert again == job
    assert again.to_k8s() == wire


@SETTINGS
@given(torchjob_specs())
def test_model_defaults_equal_crd_defaults(spec: dict[str, Any]) -> None:
    doc = torchjob_manifest(spec)
    job = _parse(spec)
    if job is None:
        return
    assert apply_defaults(SCHEMA, doc) == job.to_k8s()


@SETTINGS
@given(torchjob_specs())
def test_user_values_survive_unchanged(spec: dict[str, Any]) -> None:
    job = _parse(spec)
    if job is None:
        return
    # Every value the user wrote is on the wire as written; defaults may fill what they left out (checked
    # against the schema's own defaulting above).
    _assert_kept(job.to_k8s()["spec"], spec, "spec")


def _assert_kept(wire: Any, user: Any, path: str) -> None:
    if isinstance(user, dict):
        assert isinstance(wire, dict), path
        for key, value in cast(dict[str, Any], user).items():
            assert key in wire, f"{path}.{key} dropped"
            _assert_kept(cast(dict[str, Any], wire)[key], value, f"{path}.{key}")
    else:
        assert wire == user, path

"""Random TorchJob specs: the apiserver (CRD schema + CEL) and the models must give the same verdict."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from api import CRD_NAME, TorchJob
from api.crd import render
from e2e.cluster import Cluster
from tests.api.api_strategies import torchjob_manifest, torchjob_specs


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> str:
    """The TorchJob CRD, applied from the models and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=render())
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    return CRD_NAME


def model_verdict(doc: dict[str, Any]) -> tuple[bool, str]:
    try:
        TorchJob.model_validate(doc)
    except ValidationError as exc:
        return False, str(exc)
    return True, ""


# Kept modest for the test run's time; raise it with PYROCLAST_API_VERDICT_EXAMPLES for a deeper search.
EXAMPLES = int(os.environ.get("PYROCLAST_API_VERDICT_EXAMPLES", "40"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=torchjob_specs())
def test_apiserver_and_models_agree(cluster: Cluster, crd: str, namespace: str, spec: dict[str, Any]) -> None:
    doc = torchjob_manifest(spec)
    ok, why = model_verdict(doc)
    proc = cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False
    )
    server_ok = proc.returncode == 0
    assert server_ok == ok, (
        f"apiserver {'admitted' if server_ok else 'refused'}, "
        f"models {'accepted' if ok else 'refused'}\n"
        f"spec: {json.dumps(spec)}\napiserver: {proc.stderr}\nmodels: {why}"
    )

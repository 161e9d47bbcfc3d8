"""The models refuse what the CRD refuses: the table of invalid jobs, and the shipped examples are valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from api import TorchJob
from tests.api.api_cases import GENERIC, INVALID_CASES, InvalidCase, base_job

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("torchjob-*.yaml"))


def test_base_job_is_valid() -> None:
    TorchJob.model_validate(base_job())


def test_table_is_big_and_unique() -> None:
    assert len(INVALID_CASES) >= 25
    assert len({c.id for c in INVALID_CASES}) == len(INVALID_CASES)


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.id)
def test_models_refuse_invalid_job(case: InvalidCase) -> None:
    with pytest.raises(ValidationError) as info:
        TorchJob.model_validate(case.manifest())
    problem = case.expect[-1]
    if not any(g in problem for g in GENERIC):
        assert problem in str(info.value)


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"torchjob-fixed.yaml", "torchjob-elastic.yaml", "torchjob-preemptible.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(path: Path) -> None:
    job = TorchJob.model_validate(yaml.safe_load(path.read_text()))
    assert job.metadata.name
    assert TorchJob.model_validate(job.to_k8s()) == job


def test_examples_cover_the_three_shapes() -> None:
    jobs = {p.name: TorchJob.model_validate(yaml.safe_load(p.read_text())) for p in EXAMPLES}
    fixed = jobs["torchjob-fixed.yaml"].spec
    elastic = jobs["torchjob-elastic.yaml"].spec
    spot = jobs["torchjob-preemptible.yaml"].spec
    assert not fixed.nodes.elastic
    assert fixed.resources is not None
    assert fixed.resources.limits is not None
    assert "nvidia.com/gpu" in fixed.resources.limits
    assert elastic.nodes.elastic
    assert spot.scheduling.preemptible
    assert spot.checkpoint is not None
    assert "persistentVolumeClaim" in spot.checkpoint.volume

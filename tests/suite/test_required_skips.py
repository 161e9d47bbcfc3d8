"""The skip policy (tests/required.py) on tiny pytest runs of their own: a skip that stands for a missing part
fails ``make test``; an allow-listed one does not; the summary always counts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SKIPPING = """
import pytest

from tests.required import import_or_missing, missing


def test_passes():
    assert True


def test_skips_for_a_reason():
    pytest.skip({reason!r})
"""


def run(tmp_path: Path, body: str, *, require: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_demo.py").write_text(body)
    (tmp_path / "test_other.py").write_text("def test_ok():\n    assert True\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYROCLAST_REQUIRE_CLUSTER", None)
    if require:
        env["PYROCLAST_REQUIRE_CLUSTER"] = "1"
    argv = [sys.executable, "-m", "pytest", "-p", "tests.required", "-q", "-p", "no:cacheprovider",
            str(tmp_path)]  # fmt: skip
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_off_the_allow_list_fails_the_run_under_require(tmp_path: Path) -> None:
    done = run(tmp_path, SKIPPING.format(reason="no GPU here"), require=True)
    assert done.returncode == 1, done.stdout
    assert "skipped: 1 (0 allow-listed)" in done.stdout
    assert "FAILS THE RUN: test_demo.py::test_skips_for_a_reason: no GPU here" in done.stdout


def test_the_same_skip_only_counts_outside_make_test(tmp_path: Path) -> None:
    done = run(tmp_path, SKIPPING.format(reason="no GPU here"), require=False)
    assert done.returncode == 0, done.stdout
    assert "skipped: 1 (0 allow-listed)" in done.stdout


# The project's allow-list is empty; the mechanism is tested with an entry the demo run's conftest adds.
ALLOW_ONE = """
import tests.required

tests.required.ALLOWED = (("NOT THIS CONFIGURATION:", "a configuration of the demo run, not a missing part"),)
"""


def test_an_allow_listed_skip_passes_under_require(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(ALLOW_ONE)
    done = run(tmp_path, SKIPPING.format(reason="NOT THIS CONFIGURATION: asked for"), require=True)
    assert done.returncode == 0, done.stdout
    assert "skipped: 1 (1 allow-listed)" in done.stdout


def test_no_skips_prints_zero(tmp_path: Path) -> None:
    done = run(tmp_path, "def test_ok():\n    assert True\n", require=True)
    assert done.returncode == 0, done.stdout
    assert "skipped: 0 (0 allow-listed)" in done.stdout


def test_a_missing_import_fails_under_require_and_skips_elsewhere(tmp_path: Path) -> None:
    body = "from tests.required import import_or_missing\n\n"
    body += (
        'import_or_missing("no_such_module_x", "workloads")\n\n\ndef test_never_runs():\n    assert False\n'
    )

    failed = run(tmp_path, body, require=True)
    assert failed.returncode != 0, failed.stdout
    assert "cannot import no_such_module_x (pyroclast[workloads])" in failed.stdout
    skipped = run(tmp_path, body, require=False)
    assert skipped.returncode == 0, skipped.stdout
    assert "skipped: 1 (0 allow-listed)" in skipped.stdout
    assert "MISSING: cannot import no_such_module_x" in skipped.stdout


@pytest.mark.parametrize("require", [True, False])
def test_missing_fails_or_skips(tmp_path: Path, require: bool) -> None:
    body = 'from tests.required import missing\n\ndef test_helm():\n    missing("helm: not built")\n'
    done = run(tmp_path, body, require=require)
    assert done.returncode == (1 if require else 0), done.stdout
    assert "helm: not built" in done.stdout

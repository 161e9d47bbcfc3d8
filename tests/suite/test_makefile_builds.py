"""`make test` stops with the build's own error, before lint or pytest, when the cluster or helm build fails
or prints no path. Runs the real Makefile, the builds overridden (BUILD_CLUSTER, BUILD_HELM), with a stand-in
virtualenv whose tools only say that they were reached: nothing is installed, linted or tested, so a broken
failure path cannot start the suite inside itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.required import missing

ROOT = Path(__file__).resolve().parents[2]
REACHED = "REACHED"
TOOLS = ("python", "ruff", "pyright")


def stand_in_venv(tmp_path: Path) -> Path:
    """A VENV whose python, ruff and pyright print REACHED with their arguments and the exported paths. Its
    `.installed` stamp is as new as pyproject.toml, so neither `make test` nor its `make lint` installs."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in TOOLS:
        script = venv / "bin" / tool
        script.write_text(
            f'#!/bin/sh\necho "{REACHED} {tool} $* '
            'KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS TEST_ASSET_HELM=$TEST_ASSET_HELM"\n'
        )
        script.chmod(0o755)
    # Not `make -o STAMP`: that does not reach the `$(MAKE) lint` inside the recipe, which would install.
    stamp = venv / ".installed"
    stamp.touch()
    pyproject = (ROOT / "pyproject.toml").stat()
    os.utime(stamp, ns=(pyproject.st_atime_ns, pyproject.st_mtime_ns))
    return venv


def make_test(tmp_path: Path, build_cluster: str, build_helm: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        missing("make (needed for `make test`)")
    # A parent make's MAKEFLAGS (pytest under `make test`) must not reach this one.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    argv = [
        make, "--no-print-directory", "test", f"VENV={stand_in_venv(tmp_path)}",
        f"BUILD_CLUSTER={build_cluster}", f"BUILD_HELM={build_helm}",
    ]  # fmt: skip
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    ("build_cluster", "build_helm", "message", "status"),
    [
        ("bash -c 'exit 3'", "true", "make: the build for KUBEBUILDER_ASSETS failed (exit 3)", 3),
        ("true", "echo /tmp", "make: the build for KUBEBUILDER_ASSETS printed no path", 1),
        ("echo /tmp", "false", "make: the build for TEST_ASSET_HELM failed (exit 1)", 1),
        ("echo /tmp", "true", "make: the build for TEST_ASSET_HELM printed no path", 1),
    ],
)
def test_a_failed_build_stops_make_test_before_lint_and_pytest(
    tmp_path: Path, build_cluster: str, build_helm: str, message: str, status: int
) -> None:
    result = make_test(tmp_path, build_cluster, build_helm)
    assert result.returncode != 0
    assert message in result.stderr
    # The recipe ends with the build's own status (make reports it as "Error N"), not a later step's.
    assert result.stderr.rstrip().endswith(f"Error {status}")
    assert REACHED not in result.stdout + result.stderr
    assert "test session starts" not in result.stdout


def test_builds_that_succeed_export_their_last_line_and_go_on_to_lint_and_pytest(tmp_path: Path) -> None:
    """The stand-ins can tell when lint and pytest are reached, so the test above is no vacuous pass."""
    result = make_test(tmp_path, "echo /k", "printf 'building\\n/h\\n'")
    assert result.returncode == 0, result.stderr
    reached = [line for line in result.stdout.splitlines() if line.startswith(REACHED)]
    assert [line.split()[1] for line in reached] == ["ruff", "ruff", "pyright", "python"]
    assert reached[-1].startswith(f"{REACHED} python -m pytest ")
    assert reached[-1].endswith("KUBEBUILDER_ASSETS=/k TEST_ASSET_HELM=/h")

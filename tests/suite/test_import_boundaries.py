"""Which package may import which: the walls ARCHITECTURE.md draws, checked on the source.

The contract is the only thing the operator and the workloads share (neither imports the other), and the
generic controller runtime knows nothing of the TorchJob application built on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = ("api", "scheduling", "workloads", "pyroclast", "controller.torchjob")
OPERATOR_PACKAGES = ("api", "controller", "scheduling", "pyroclast")


def imported_modules(package: str) -> dict[str, set[str]]:
    """Per source file of `package`, the modules it imports (absolute names)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", OPERATOR_PACKAGES)
def test_the_operator_never_imports_the_training_package(package: str) -> None:
    offenders = {
        path: sorted(n for n in names if n == "workloads" or n.startswith("workloads."))
        for path, names in imported_modules(package).items()
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_workloads_take_only_the_contract_from_the_operator_side() -> None:
    taken = {
        name
        for names in imported_modules("workloads").values()
        for name in names
        if name.split(".")[0] in OPERATOR_PACKAGES
    }
    assert taken == {"api.contract"}


def test_the_contract_needs_only_the_standard_library() -> None:
    (names,) = [n for path, n in imported_modules("api").items() if path == "api/contract.py"]
    assert {name.split(".")[0] for name in names} <= {"__future__", "typing"}


def test_the_runtime_imports_nothing_of_the_application() -> None:
    files = imported_modules("controller/runtime")
    assert "controller/runtime/manager.py" in files, "the runtime package moved: update this test"
    offenders = {
        path: sorted(n for n in names if any(n == a or n.startswith(f"{a}.") for a in APPLICATION))
        for path, names in files.items()
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_runtime_is_imported_by_its_public_names_or_modules_only() -> None:
    """Nothing outside the runtime reaches for a module that is no longer there (a half-done move)."""
    stale = {
        path: sorted(
            n
            for n in names
            if n.startswith("controller.") and not n.startswith(("controller.runtime", "controller.torchjob"))
        )
        for package in ("controller", "pyroclast", "scheduling", "e2e", "tests")
        for path, names in imported_modules(package).items()
    }
    assert {path: names for path, names in stale.items() if names} == {}

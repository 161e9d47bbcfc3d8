"""Skips that cannot hide a broken project (a pytest plugin, loaded by the root ``conftest.py``).

A test that needs a part of the project (torch, mlflow and its server, helm, the cluster's binaries)
calls :func:`missing` when that part is absent: outside ``make test`` it skips loudly, under
``PYROCLAST_REQUIRE_CLUSTER=1`` (what ``make test`` sets) it fails. As a second guard, the hooks below count
every skip, print them at the end of the run, and under ``PYROCLAST_REQUIRE_CLUSTER=1`` turn a successful run
into a failed one when any skip's reason is not on :data:`ALLOWED`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE_ENV = "PYROCLAST_REQUIRE_CLUSTER"

ALLOWED: tuple[tuple[str, str], ...] = ()
"""Reason prefixes a skip may have under ``PYROCLAST_REQUIRE_CLUSTER=1``, each with why it is no gap."""


def required() -> bool:
    """Whether missing parts fail instead of skipping (``make test``)."""
    return os.environ.get(REQUIRE_ENV) == "1"


def missing(what: str) -> NoReturn:
    """`what` (a part of the project) is missing or broken: fail under ``make test``, else skip loudly."""
    if required():
        pytest.fail(f"{what} ({REQUIRE_ENV}=1: a missing part fails the run)", pytrace=False)
    pytest.skip(f"MISSING: {what}", allow_module_level=True)


def import_or_missing(name: str, extra: str) -> ModuleType:
    """``pytest.importorskip`` that fails under ``make test``: `name` comes with the project's `extra`."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"cannot import {name} (pyroclast[{extra}]): {exc}")


@dataclass(frozen=True, slots=True)
class Skip:
    """One skipped test (or module) and why."""

    nodeid: str
    reason: str

    @property
    def allowed(self) -> bool:
        """Whether the reason is on the allow-list."""
        return any(self.reason.startswith(prefix) for prefix, _ in ALLOWED)


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def not_allowed(skips: Iterable[Skip]) -> list[Skip]:
    """The skips that stand for a missing or broken part."""
    return [s for s in skips if not s.allowed]


class SkipLedger:
    """Counts every skip of the run (tests and whole modules) and judges them at the end."""

    def __init__(self) -> None:
        self.skips: list[Skip] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skips.append(Skip(report.nodeid, _reason(report)))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    @pytest.hookimpl(trylast=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
        """Under ``PYROCLAST_REQUIRE_CLUSTER=1`` a run with a skip off the allow-list fails."""
        if required() and exitstatus == pytest.ExitCode.OK and not_allowed(self.skips):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Always: the number of skipped tests and each reason; the ones that fail the run in red."""
        bad = not_allowed(self.skips)
        allowed = len(self.skips) - len(bad)
        terminalreporter.write_sep("=", f"skipped: {len(self.skips)} ({allowed} allow-listed)")
        for skip in self.skips:
            marker = "allowed" if skip.allowed else ("FAILS THE RUN" if required() else "skipped")
            terminalreporter.write_line(f"{marker}: {skip.nodeid}: {skip.reason}", red=not skip.allowed)
        if required() and bad:
            terminalreporter.write_line(
                f"{len(bad)} skip(s) not on the allow-list (tests/required.py) under {REQUIRE_ENV}=1: "
                "the run fails",
                red=True,
                bold=True,
            )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipLedger(), "pyroclast-skip-ledger")

"""The run's training-step goodput as the workload itself measures it, from its own per-step log.

The workload has no API access and no prices, so it cannot know what the operator charges to queueing,
preemption or cost (those are in the TorchJob's ``status.goodput`` and ``status.usage``). What it does know is
its own step history, kept in the MLflow run across restarts: every step it ran, with the seconds it took
(``step_s``). A step logged more than once was done again after a resume from an older checkpoint; only its
last run was kept. So: kept seconds = the last run of each step, recomputed = every earlier run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepGoodput:
    """Step seconds kept and recomputed over a run's attempts."""

    kept_seconds: float
    recomputed_seconds: float
    recomputed_steps: int

    @property
    def fraction(self) -> float:
        """Kept share of all step seconds (1.0 when nothing ran)."""
        total = self.kept_seconds + self.recomputed_seconds
        return self.kept_seconds / total if total > 0 else 1.0

    def metrics(self) -> dict[str, float]:
        """As logged to the run at its end."""
        return {
            "goodput_step_fraction": self.fraction,
            "goodput_kept_step_seconds": self.kept_seconds,
            "goodput_recomputed_step_seconds": self.recomputed_seconds,
            "goodput_recomputed_steps": float(self.recomputed_steps),
        }


def step_goodput(history: Iterable[tuple[int, float, int]]) -> StepGoodput:
    """From ``(step, seconds, logged at)`` entries: the last run of each step is kept, earlier ones redone."""
    latest: dict[int, tuple[int, float]] = {}
    recomputed_seconds, recomputed_steps = 0.0, 0
    for step, seconds, at in sorted(history, key=lambda e: e[2]):
        if step in latest:
            recomputed_seconds += latest[step][1]
            recomputed_steps += 1
        latest[step] = (at, max(seconds, 0.0))
    kept = sum(seconds for _, seconds in latest.values())
    return StepGoodput(kept, recomputed_seconds, recomputed_steps)

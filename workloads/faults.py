"""Test-only fault injection: ``PYROCLAST_FAULT=<phase>@<step>[@<rank>][,...]`` SIGKILLs this process there.

Phases: ``train`` (after the optimizer step ``step``), ``hang`` (stop making progress there, like a wedged
peer; SIGTERM still kills it), and the save phases of the checkpoint for ``step``:
``before_write`` (step dir created, nothing written), ``mid_write`` (this rank's data files written, no
``.metadata`` yet), ``before_manifest`` (DCP finished, no manifest) and ``before_latest`` (manifest written,
``latest`` not yet moved). The i-th fault of the list fires only in attempt i (``TORCHELASTIC_RESTART_COUNT
== i``), so one job can walk through several faults and show what each restart resumed from. Rank
defaults to 0.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

PHASES = ("train", "hang", "before_write", "mid_write", "before_manifest", "before_latest")


@dataclass(frozen=True)
class FaultPlan:
    """Where (phase, step, rank) to die; ``None`` plans never fire."""

    phase: str
    step: int
    rank: int = 0

    @classmethod
    def for_attempt(cls, spec: str | None, restart_count: int) -> FaultPlan | None:
        """The fault of attempt ``restart_count`` in a comma-separated list, if any."""
        plans = [cls.parse(item) for item in (spec or "").split(",") if item.strip()]
        return plans[restart_count] if restart_count < len(plans) else None

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        parts = spec.strip().split("@")
        if len(parts) not in (2, 3) or parts[0] not in PHASES:
            raise ValueError(f"bad fault spec {spec!r}: want <phase>@<step>[@<rank>], phase in {PHASES}")
        return cls(parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 0)


class FaultInjector:
    """Kills the calling process when its plan (already chosen for this attempt) matches."""

    def __init__(self, plan: FaultPlan | None, rank: int) -> None:
        self._armed = plan is not None and plan.rank == rank
        self._plan = plan

    def hit(self, phase: str, step: int) -> None:
        """Die here if the plan names this phase and step."""
        if not (
            self._armed and self._plan is not None and (phase, step) == (self._plan.phase, self._plan.step)
        ):
            return
        if phase == "hang":
            log.warning("fault injection: hanging after step %d", step)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            time.sleep(3600)
        log.warning("fault injection: SIGKILL at %s of step %d", phase, step)
        os.kill(os.getpid(), signal.SIGKILL)

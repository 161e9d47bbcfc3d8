"""Signal handling: a signal only raises a local flag; ranks agree on stopping at a step boundary."""

from __future__ import annotations

import logging
import signal
from types import FrameType

log = logging.getLogger(__name__)

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class StopFlag:
    """Set by SIGTERM/SIGINT/SIGUSR1 (torchrun forwards the pod's SIGTERM to every worker)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def install(self, signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS) -> StopFlag:
        for sig in signals:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            log.warning("signal %d: stopping at the next step boundary after a checkpoint", signum)
        self.signum = signum

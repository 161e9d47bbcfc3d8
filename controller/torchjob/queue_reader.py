"""Reads the Volcano queues of waiting jobs for :mod:`.queue_gate`, at most once per queue per ``TTL``.

The operator only ``get``s queues (a small, read-only grant; no informer, so no list/watch and no cache of
every queue): a queue is read while one of its jobs waits with a Pending PodGroup, and the answer serves every
job of that queue for ``TTL`` seconds, so a thousand jobs waiting in one queue cost one read per ``TTL``.
Where the grant is missing (a namespaced install) or the read fails, nothing is said: the check is a nicety.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from controller.runtime.client import Client
from controller.runtime.errors import ApiError, NotFound
from controller.torchjob.kinds import QUEUES
from controller.torchjob.queue_gate import QueueProblem, queue_problem

log = logging.getLogger(__name__)

TTL: Final = 5.0
"""Seconds one read of a queue answers for."""


class QueueReader:
    """What keeps a queue from admitting jobs, read through a short per-queue cache."""

    def __init__(self, client: Client, *, monotonic: Callable[[], float] = time.monotonic):
        self.client = client
        self._monotonic = monotonic
        self._answers: dict[str, tuple[float, QueueProblem | None]] = {}
        self._failing: set[str] = set()

    async def problem(self, name: str) -> QueueProblem | None:
        """Why queue `name` admits no job now, or None (also when it cannot be read)."""
        now = self._monotonic()
        cached = self._answers.get(name)
        if cached is not None and now - cached[0] < TTL:
            return cached[1]
        try:
            answer = queue_problem(name, await self.client.get(QUEUES, name))
        except NotFound:
            answer = queue_problem(name, None)
        except ApiError as err:
            if name not in self._failing:  # once per queue until it reads again, not on every reconcile
                log.info("cannot read Volcano queue %s (%s); not checking it", name, err)
                self._failing.add(name)
            answer = None
        else:
            self._failing.discard(name)
        self._answers = {k: v for k, v in self._answers.items() if now - v[0] < TTL}
        self._answers[name] = (now, answer)
        return answer

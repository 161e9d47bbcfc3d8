"""Expectations: writes this process made that the informer caches have not shown yet.

A reconcile that reads a cache lagging behind its own creates and deletes would act twice (a second
create, a restart counted twice). Until every expectation of a job is observed, or has timed out, the
reconciler waits for the cache instead of acting (as the Kubernetes Job controller does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_TTL = 60.0


@dataclass
class _Pending:
    creates: set[tuple[str, str]] = field(default_factory=set[tuple[str, str]])
    """(kind, name) created but not yet seen."""
    deletes: set[tuple[str, str]] = field(default_factory=set[tuple[str, str]])
    """(kind, uid) deleted but still seen."""
    stale_version: str | None = None
    """The job resourceVersion a status write was based on: a cache still showing it is behind."""
    since: float = 0.0


class Expectations:
    """Per-job outstanding writes. ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._jobs: dict[str, _Pending] = {}

    def _get(self, job: str) -> _Pending:
        pending = self._jobs.get(job)
        if pending is None:
            pending = self._jobs[job] = _Pending()
        pending.since = self._clock()
        return pending

    def created(self, job: str, kind: str, name: str) -> None:
        """`job`'s reconcile created `kind`/`name`."""
        self._get(job).creates.add((kind, name))

    def deleted(self, job: str, kind: str, uid: str) -> None:
        """`job`'s reconcile deleted the `kind` object with `uid`."""
        self._get(job).deletes.add((kind, uid))

    def status_written(self, job: str, based_on: str) -> None:
        """`job`'s status was written over resourceVersion `based_on`."""
        self._get(job).stale_version = based_on

    def pending(self, job: str) -> bool:
        """Whether `job` has writes outstanding (else :meth:`satisfied` is True without a look)."""
        return job in self._jobs

    def satisfied(
        self, job: str, job_version: str, seen_names: set[tuple[str, str]], seen_uids: set[tuple[str, str]]
    ) -> bool:
        """Whether the caches (seen (kind, name) and (kind, uid) pairs) caught up with `job`'s writes.

        Observed expectations are dropped; all of them are dropped once the oldest is older than the TTL.
        """
        pending = self._jobs.get(job)
        if pending is None:
            return True
        if self._clock() - pending.since > self.ttl:
            del self._jobs[job]
            return True
        pending.creates -= seen_names
        pending.deletes &= seen_uids
        if pending.stale_version is not None and pending.stale_version != job_version:
            pending.stale_version = None
        if pending.creates or pending.deletes or pending.stale_version is not None:
            return False
        del self._jobs[job]
        return True

    def forget(self, job: str) -> None:
        """Drop everything about `job` (it is gone)."""
        self._jobs.pop(job, None)

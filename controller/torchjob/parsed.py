"""Parsed TorchJobs, one per job, reused while its uid and resourceVersion stay the same.

Validating a TorchJob is a large part of a no-op reconcile; the object only changes with its
resourceVersion. The memo holds the `limit` jobs reconciled last (:meth:`forget` drops a deleted job): a
model is ~13 KB, 130 MB for 10,000 jobs, while a parse is ~0.1 ms, so only the jobs at work stay parsed.
Callers must treat a returned model as read-only: the plan copies the status it changes
(``model_copy(deep=True)``) and never writes to the job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from api import TorchJob
from controller.runtime import objects
from controller.runtime.objects import JsonObject

PARSED_LIMIT: Final = 1024
"""Models kept (least recently used go first): a burst of a thousand new jobs stays parsed while it is
reconciled, and memory stays bounded however many jobs exist."""


class ParsedJobs:
    """``TorchJob.from_k8s`` memoised per job key, keyed by the object's uid and resourceVersion."""

    def __init__(self, limit: int = PARSED_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"ParsedJobs limit must be >= 1, got {limit}")
        self.limit = limit
        self._entries: dict[str, tuple[str, str, TorchJob]] = {}  # in order of use, oldest first
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, raw: JsonObject, fresh: Callable[[], JsonObject]) -> TorchJob:
        """The model of `raw` (the cached object, only read for its uid and resourceVersion); on a miss it
        is parsed from `fresh()`, a private copy, so the model shares nothing with the cache."""
        meta = objects.metadata(raw)
        uid, version = str(meta.get("uid", "")), objects.resource_version(raw)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == uid and entry[1] == version and version:
            self.hits += 1
            self._entries[key] = self._entries.pop(key)  # now the most recently used
            return entry[2]
        self.misses += 1
        self._entries.pop(key, None)
        job = TorchJob.from_k8s(fresh())
        if len(self._entries) >= self.limit:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (uid, version, job)
        return job

    def forget(self, key: str) -> None:
        """Drop `key`'s entry (the job is gone)."""
        self._entries.pop(key, None)

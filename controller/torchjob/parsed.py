"""Parsed TorchJobs, one per job, reused while its uid and resourceVersion stay the same.

Validating a TorchJob is a large part of a no-op reconcile; the object only changes with its
resourceVersion. The memo holds one entry per job key (bounded by the jobs in the cache; :meth:`forget`
drops a deleted job). Callers must treat a returned model as read-only: the plan copies the status it
changes (``model_copy(deep=True)``) and never writes to the job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api import TorchJob
from controller import objects

JsonObject = dict[str, Any]


class ParsedJobs:
    """``TorchJob.from_k8s`` memoised per job key, keyed by the object's uid and resourceVersion."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, str, TorchJob]] = {}
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
            return entry[2]
        self.misses += 1
        self._entries.pop(key, None)
        job = TorchJob.from_k8s(fresh())
        self._entries[key] = (uid, version, job)
        return job

    def forget(self, key: str) -> None:
        """Drop `key`'s entry (the job is gone)."""
        self._entries.pop(key, None)

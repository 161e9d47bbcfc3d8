"""Reading the rig apiserver's audit log (``Cluster(audit=True)``): who wrote what, as the server saw it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from controller.runtime.objects import JsonObject


@dataclass(frozen=True, slots=True)
class Write:
    """One write request the apiserver completed."""

    verb: str
    resource: str
    """``pods``, ``torchjobs/status``, ... (subresource appended)."""
    namespace: str
    name: str
    code: int
    user_agent: str
    dry_run: bool = False
    """Admitted and validated, nothing stored (``?dryRun=All``)."""

    @property
    def ok(self) -> bool:
        """Whether the write took effect (2xx)."""
        return 200 <= self.code < 300


def read_writes(path: Path, offset: int = 0) -> Iterator[Write]:
    """Writes logged after byte `offset` (one ResponseComplete entry per request)."""
    with path.open("rb") as f:
        f.seek(offset)
        for line in f:
            try:
                entry: JsonObject = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if entry.get("stage") != "ResponseComplete":
                continue
            ref: JsonObject = entry.get("objectRef") or {}
            resource = str(ref.get("resource", ""))
            if ref.get("subresource"):
                resource += "/" + str(ref["subresource"])
            yield Write(
                verb=str(entry.get("verb", "")),
                resource=resource,
                namespace=str(ref.get("namespace", "")),
                name=str(ref.get("name", "")),
                code=int((entry.get("responseStatus") or {}).get("code", 0)),
                user_agent=str(entry.get("userAgent", "")),
                dry_run="dryRun=" in str(entry.get("requestURI", "")),
            )


def log_size(path: Path) -> int:
    """The audit log's current size: pass it as `offset` later to read only what came after."""
    return path.stat().st_size if path.exists() else 0


def by_kind(writes: Iterable[Write]) -> Counter[str]:
    """Counts by ``verb resource``, dry runs apart (``create pods (dry run)``)."""
    return Counter(f"{w.verb} {w.resource}" + (" (dry run)" if w.dry_run else "") for w in writes)


def belongs_to(write: Write, job: str) -> bool:
    """Whether a write names `job` or one of its objects (`<job>-...`, Event `<job>.<suffix>`)."""
    return write.name == job or write.name.startswith((f"{job}-", f"{job}."))

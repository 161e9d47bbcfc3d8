"""Operator-readable output: JSON progress lines and the final termination message."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TERMINATION_LIMIT = 4096  # kubelet keeps at most 4 KiB of a termination message


class ProgressReporter:
    """Writes one JSON object per event to stdout and appends it to the progress file, if any."""

    def __init__(self, enabled: bool, path: Path | None) -> None:
        self._enabled = enabled
        self._path = path
        if enabled and path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: str, **fields: Any) -> None:
        """Publish ``{"event": event, **fields, "ts": now}``; never raises on I/O errors."""
        if not self._enabled:
            return
        line = json.dumps({"event": event, **fields, "ts": round(time.time(), 3)}, sort_keys=True)
        print(line, file=sys.stdout, flush=True)
        if self._path is None:
            return
        try:
            with self._path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as err:
            log.warning("progress file %s: %s", self._path, err)


def write_termination_message(path: Path, message: dict[str, Any]) -> None:
    """Replace the termination log with ``message`` (truncated to kubelet's limit); errors are logged."""
    data = json.dumps(message, sort_keys=True)
    if len(data) > TERMINATION_LIMIT:
        message = {**message, "error": str(message.get("error", ""))[:1024]}
        data = json.dumps(message, sort_keys=True)[:TERMINATION_LIMIT]
    try:
        path.write_text(data, encoding="utf-8")
    except OSError as err:
        log.warning("termination log %s: %s", path, err)

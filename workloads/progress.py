"""Operator-readable output: JSON progress lines, live reports to the operator, the termination message."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from api import contract

log = logging.getLogger(__name__)


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


def write_termination_message(path: Path, message: contract.TerminationMessage) -> None:
    """Replace the termination log with ``message`` (truncated to kubelet's limit); errors are logged."""
    data = json.dumps(message, sort_keys=True)
    if len(data) > contract.MAX_TERMINATION_MESSAGE:
        message = {**message, "error": message["error"][:1024]}
        data = json.dumps(message, sort_keys=True)[: contract.MAX_TERMINATION_MESSAGE]
    try:
        path.write_text(data, encoding="utf-8")
    except OSError as err:
        log.warning("termination log %s: %s", path, err)


POST_EVERY = 10
"""Steps between live reports: cheap for the operator, which folds them into at most one write per 2 s."""
POST_TIMEOUT = 2.0


class LivePoster:
    """POSTs progress to the operator's live endpoint (``PYROCLAST_PROGRESS_URL``) every `every` steps.

    Global rank 0 only. The token file is re-read on every post (the kubelet rotates the projected token). A
    failed post is logged once until the next success and never interrupts training. The newest accounting an
    answer carried is kept in :attr:`accounting` (for MLflow at the end of the run).
    """

    def __init__(
        self,
        url: str | None,
        token_file: Path | None,
        *,
        checkpoint_dir: Path | None = None,
        enabled: bool = True,
        every: int = POST_EVERY,
        timeout: float = POST_TIMEOUT,
    ) -> None:
        self.endpoint = (
            f"{url.rstrip('/')}{contract.PROGRESS_PATH}" if url and enabled and token_file else None
        )
        self._token_file = token_file
        self._checkpoint_dir = checkpoint_dir
        self._every = max(every, 1)
        self._timeout = timeout
        self._failing = False
        self.accounting: contract.ProgressAccounting | None = None
        """The job's cost and goodput from the operator's newest answer that carried them."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, rank: int, checkpoint_dir: Path | None = None, **options: Any
    ) -> LivePoster:
        """Off unless the operator set both variables and this is global rank 0."""
        token = env.get(contract.PROGRESS_TOKEN_FILE)
        return cls(
            env.get(contract.PROGRESS_URL) or None,
            Path(token) if token else None,
            checkpoint_dir=checkpoint_dir,
            enabled=rank == 0,
            **options,
        )

    def maybe_post(
        self, step: int, total_steps: int | None, loss: float | None, committed_step: int | None
    ) -> bool:
        """Post on every `every`-th step (and the last); True when the operator accepted the report."""
        if self.endpoint is None or (step % self._every and step != total_steps):
            return False
        return self.post(step, total_steps, loss, committed_step)

    def body(
        self, step: int, total_steps: int | None, loss: float | None, committed_step: int | None
    ) -> contract.ProgressReport:
        """What is sent, unknown values left out."""
        body: contract.ProgressReport = {"step": step}
        if total_steps is not None:
            body["totalSteps"] = total_steps
        if loss is not None and math.isfinite(loss):
            body["loss"] = loss
        if committed_step is not None and self._checkpoint_dir is not None:
            path = self._checkpoint_dir / contract.step_dir_name(committed_step)
            body["checkpoint"] = {"step": committed_step, "path": str(path)}
        return body

    def post(
        self, step: int, total_steps: int | None, loss: float | None, committed_step: int | None
    ) -> bool:
        """One POST; errors are logged (once per failing streak), never raised."""
        if self.endpoint is None or self._token_file is None:
            return False
        data = json.dumps(self.body(step, total_steps, loss, committed_step)).encode()
        try:
            token = self._token_file.read_text(encoding="utf-8").strip()
            request = urllib.request.Request(
                self.endpoint,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                accounting = accounting_of_answer(answer.read())
        except urllib.error.HTTPError as err:
            self._failed(f"HTTP {err.code}: {_message(err)}")
            return False
        except (OSError, ValueError) as err:
            self._failed(str(err))
            return False
        if self._failing:
            log.info("live progress reaches %s again", self.endpoint)
        self._failing = False
        if accounting is not None:
            self.accounting = accounting
        return True

    def job_accounting(self) -> tuple[contract.ProgressAccounting | None, str]:
        """The kept accounting, or None and why there is none (for the one log line that says so)."""
        if self.accounting is not None:
            return self.accounting, ""
        if self.endpoint is None:
            return None, f"live progress is off (no {contract.PROGRESS_URL}, or not global rank 0)"
        return None, "no answer of the operator's progress endpoint carried the job's accounting"

    def _failed(self, why: str) -> None:
        if not self._failing:
            log.warning("live progress to %s failed (training goes on; logged once): %s", self.endpoint, why)
        self._failing = True


def accounting_of_answer(data: bytes) -> contract.ProgressAccounting | None:
    """The accounting in an accepted report's answer (:class:`~api.contract.ProgressAnswer`); None when the
    answer has none (an older operator, or a job without usage yet) or is not understood. Values of the wrong
    type are left out, never raised on."""
    try:
        raw: object = json.loads(data or b"{}")
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    found = cast("dict[str, object]", raw).get("accounting")
    if not isinstance(found, dict):
        return None
    fields = cast("dict[str, object]", found)
    accounting: contract.ProgressAccounting = {}
    cost, percent = _amount(fields.get("cost")), _amount(fields.get("goodputPercent"))
    currency = fields.get("currency")
    if cost is not None:
        accounting["cost"] = cost
        if isinstance(currency, str) and currency:
            accounting["currency"] = currency
    if percent is not None:
        accounting["goodputPercent"] = percent
    lost = fields.get("lostSeconds")
    if isinstance(lost, dict):
        by_cause = cast("dict[str, object]", lost)
        seconds = {cause: _amount(by_cause.get(cause)) for cause in contract.LOST_CAUSES}
        accounting["lostSeconds"] = {cause: s for cause, s in seconds.items() if s is not None}
    return accounting or None


def _amount(value: object) -> float | None:
    """A finite, non-negative number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _message(err: urllib.error.HTTPError) -> str:
    try:
        body: object = json.loads(err.read() or b"{}")
    except (OSError, ValueError):
        return err.reason
    if not isinstance(body, dict):
        return err.reason
    return str(cast("dict[str, object]", body).get("message", err.reason))

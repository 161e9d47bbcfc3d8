"""MLflow experiment tracking from global rank 0, resuming the same run after every restart.

The run id lives in ``<checkpoint dir>/mlflow_run_id``, so a restarted (or resized) job reopens the run it
started. At the end, the run's step goodput (the share of step time that went into kept steps, from its own
step history) is logged next to its metrics, and so are the job's cost and goodput as the operator accounts
them (``status.usage`` and ``status.goodput``), which rank 0 learns from the answers to its live progress
reports (:class:`workloads.progress.LivePoster`): the workload has no API rights to read them itself. Tracking
failures are logged and never stop training. Needs ``pyroclast[tracking]``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from api import contract
from workloads.commit import atomic_write
from workloads.goodput import step_goodput

log = logging.getLogger(__name__)

RUN_ID_FILE = "mlflow_run_id"
CURRENCY_TAG = "pyroclast.job_cost_currency"

JobAccounting = tuple[contract.ProgressAccounting | None, str]
"""The job's cost and goodput as the operator accounts them, or None and why they are unknown."""
UNKNOWN: JobAccounting = (None, "the training loop gave none")


def accounting_metrics(accounting: contract.ProgressAccounting) -> dict[str, float]:
    """The operator's accounting as run metrics: ``job_cost``, ``job_goodput_percent`` and
    ``job_lost_<cause>_seconds``, each only when the operator knew it."""
    metrics: dict[str, float] = {}
    if "cost" in accounting:
        metrics["job_cost"] = accounting["cost"]
    if "goodputPercent" in accounting:
        metrics["job_goodput_percent"] = accounting["goodputPercent"]
    for cause, seconds in accounting.get("lostSeconds", {}).items():
        metrics[f"job_lost_{cause}_seconds"] = seconds
    return metrics


class Tracker:
    """No-op base: what the training loop calls, whether or not MLflow is configured."""

    run_id: str | None = None

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Record metrics for ``step``."""

    def finish(self, status: str, final_checkpoint: Path | None, accounting: JobAccounting = UNKNOWN) -> None:
        """Close the run (``FINISHED``, ``KILLED`` or ``FAILED``); `accounting` is the job's, or None and why
        (:meth:`workloads.progress.LivePoster.job_accounting`)."""


class MlflowTracker(Tracker):
    """Logs params once, metrics per step and the final checkpoint location to one MLflow run."""

    def __init__(self, client: Any, run_id: str) -> None:
        self._client = client
        self.run_id = run_id

    @classmethod
    def open(
        cls, tracking_uri: str, experiment: str, state_dir: Path | None, params: dict[str, str]
    ) -> Tracker:
        """Resume the run recorded in ``state_dir`` or create one; a no-op tracker if MLflow fails."""
        try:
            from mlflow.tracking import MlflowClient  # optional extra
        except ImportError:
            log.warning(
                "MLFLOW_TRACKING_URI is set but mlflow is not installed (pip install pyroclast[tracking])"
            )
            return Tracker()
        try:
            client = MlflowClient(tracking_uri=tracking_uri)
            id_file = None if state_dir is None else state_dir / RUN_ID_FILE
            run_id = id_file.read_text(encoding="utf-8").strip() if id_file and id_file.is_file() else ""
            if run_id:
                client.update_run(run_id, status="RUNNING")
                log.info("resuming MLflow run %s", run_id)
                return cls(client, run_id)
            found = client.get_experiment_by_name(experiment)
            exp_id = found.experiment_id if found is not None else client.create_experiment(experiment)
            run_id = client.create_run(exp_id).info.run_id
            from mlflow.entities import Param

            client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
            if id_file is not None:
                id_file.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(id_file, run_id + "\n")
            return cls(client, run_id)
        except Exception as err:  # tracking must never stop training
            log.warning("MLflow disabled: %s", err)
            return Tracker()

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        try:
            ts = _now_ms()
            batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
            self._client.log_batch(self.run_id, metrics=batch)
        except Exception as err:
            log.warning("MLflow log_metrics: %s", err)

    def finish(self, status: str, final_checkpoint: Path | None, accounting: JobAccounting = UNKNOWN) -> None:
        """Close the run; a finished run also gets its step goodput (:mod:`workloads.goodput`) and the job's
        cost and goodput as the operator accounts them, when known."""
        try:
            if status == "FINISHED":
                history = self._client.get_metric_history(self.run_id, "step_s")
                measured = step_goodput((m.step, m.value, m.timestamp) for m in history)
                last_step = max((m.step for m in history), default=0)
                self.log_metrics(last_step, measured.metrics())
                self._log_accounting(last_step, *accounting)
            if final_checkpoint is not None:
                self._client.set_tag(self.run_id, "pyroclast.final_checkpoint", str(final_checkpoint))
            self._client.set_terminated(self.run_id, status=status)
        except Exception as err:
            log.warning("MLflow finish: %s", err)

    def _log_accounting(self, step: int, accounting: contract.ProgressAccounting | None, why: str) -> None:
        if accounting is None:
            log.info("job cost and goodput not logged to MLflow: %s", why)
            return
        self.log_metrics(step, accounting_metrics(accounting))
        if "currency" in accounting:
            self._client.set_tag(self.run_id, CURRENCY_TAG, accounting["currency"])
        if "cost" not in accounting:
            log.info("job cost not logged to MLflow: the operator has no rates (--rates)")


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)

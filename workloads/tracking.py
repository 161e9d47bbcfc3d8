"""MLflow experiment tracking from global rank 0, resuming the same run after every restart.

The run id lives in ``<checkpoint dir>/mlflow_run_id``, so a restarted (or resized) job reopens the run it
started. At the end, the run's step goodput (the share of step time that went into kept steps, from its own
step history) is logged next to its metrics. Tracking failures are logged and never stop training. Needs
``pyroclast[tracking]``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from workloads.commit import atomic_write
from workloads.goodput import step_goodput

log = logging.getLogger(__name__)

RUN_ID_FILE = "mlflow_run_id"


class Tracker:
    """No-op base: what the training loop calls, whether or not MLflow is configured."""

    run_id: str | None = None

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Record metrics for ``step``."""

    def finish(self, status: str, final_checkpoint: Path | None) -> None:
        """Close the run (``FINISHED``, ``KILLED`` or ``FAILED``)."""


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

    def finish(self, status: str, final_checkpoint: Path | None) -> None:
        """Close the run; a finished run also gets its step goodput (:mod:`workloads.goodput`)."""
        try:
            if status == "FINISHED":
                history = self._client.get_metric_history(self.run_id, "step_s")
                measured = step_goodput((m.step, m.value, m.timestamp) for m in history)
                self.log_metrics(max((m.step for m in history), default=0), measured.metrics())
            if final_checkpoint is not None:
                self._client.set_tag(self.run_id, "pyroclast.final_checkpoint", str(final_checkpoint))
            self._client.set_terminated(self.run_id, status=status)
        except Exception as err:
            log.warning("MLflow finish: %s", err)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)

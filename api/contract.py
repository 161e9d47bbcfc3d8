"""The contract between the operator and the training code in its worker pods.

Both sides import this module and nothing of each other: the operator (``controller.torchjob``) sets these
variables, reads these exit codes and termination messages and serves the progress schema; the reference
workload (``workloads``) reads and writes them. It holds names, numbers and shapes only (standard library), so
a change to either side that breaks the other shows up in one place.

Launcher env the operator sets (read by torchrun as the defaults of its flags, not by the workload):

==========================================  ==================================================================
``PET_NNODES``                              ``"min:max"`` pods.
``PET_NPROC_PER_NODE``                      workers per pod (GPUs per pod; CPU count for CPU jobs).
``PET_RDZV_BACKEND``                        ``c10d``.
``PET_RDZV_ENDPOINT``                       ``<rendezvous service>:29400`` (the ``workloads.rendezvous``
                                            server).
``PET_RDZV_ID``                             ``<job uid>-<attempt>``; a new id on every whole-job restart (the
                                            store is in memory and a closed run id stays closed).
``PET_RDZV_CONF``                           must contain ``is_host=false`` (the dedicated store is the host);
                                            also ``last_call_timeout``, ``keep_alive_interval``,
                                            ``keep_alive_max_attempt``, ``join_timeout``, ``read_timeout``.
``PET_MAX_RESTARTS``                        worker-group restarts; each drained or lost pod costs survivors
                                            one.
``PET_LOCAL_ADDR``                          this pod's resolvable address (pod IP or stable DNS name).
``TORCH_DISABLE_SHARE_RDZV_TCP_STORE``      ``1`` for elastic jobs (trainer store rebuilt every round).
==========================================  ==================================================================

Workload env (read by :mod:`workloads.config`). The ``PYROCLAST_*`` names are reserved for the operator at
admission, so a TorchJob sets the training knobs as arguments instead: ``--total-steps``, ``--global-batch``,
``--dataset-size``, ``--seed``, ``--lr``, ``--model-width``, ``--model-depth``, ``--checkpoint-async 1``,
``--mlflow-experiment`` (flags win over env):

==================================  ==========================================================================
``PYROCLAST_JOB_NAME``, ``_UID``    the TorchJob's name and UID; ``PYROCLAST_ATTEMPT`` its gang attempt.
``PYROCLAST_CHECKPOINT_DIR``        shared checkpoint root (required for resume); ``step-<N>`` dirs
                                    (:func:`step_dir_name`), a ``latest`` pointer, the ``fence`` file (which
                                    worker group may train and commit) and the MLflow run id live here.
``PYROCLAST_CHECKPOINT_INTERVAL``   save every N steps (0: only on drain and at the end). Default 50.
``PYROCLAST_CHECKPOINT_KEEP``       committed checkpoints kept. Default 3.
``PYROCLAST_CHECKPOINT_ASYNC``      ``1``: periodic saves run in the background (drain/final saves never).
``PYROCLAST_RESUME_FROM``           set on restarted pods: the newest committed ``step-<N>`` directory the
                                    operator saw reported (``status.lastCheckpoint.path``). The workload
                                    resumes from the newest complete checkpoint of this and ``latest``.
``PYROCLAST_TOTAL_STEPS``           optimizer steps of the whole job. Default 100.
``PYROCLAST_GLOBAL_BATCH``          samples per step over all ranks; must divide by the world size.
``PYROCLAST_DATASET_SIZE``          synthetic samples per epoch. ``PYROCLAST_SEED``: data/model seed.
``PYROCLAST_LR``                    SGD learning rate. ``PYROCLAST_MODEL_WIDTH``/``_DEPTH``: MLP shape.
``PYROCLAST_PROGRESS_FILE``         JSON-lines progress file appended by global rank 0 (also on stdout).
``PYROCLAST_PROGRESS_URL``          set when the operator serves live progress: global rank 0 POSTs a
                                    :class:`ProgressReport` to ``<url>`` + :data:`PROGRESS_PATH` every 10
                                    steps, never failing training on an error. The ``202`` answer
                                    (:class:`ProgressAnswer`) carries the job's cost and goodput, which
                                    rank 0 logs to MLflow at the end of a finished run.
``PYROCLAST_PROGRESS_TOKEN_FILE``   the pod-bound token to send as ``Authorization: Bearer`` (re-read on every
                                    post: the kubelet rotates it).
``PYROCLAST_TERMINATION_LOG``       final JSON message path. Default ``/dev/termination-log``.
``PYROCLAST_INIT_TIMEOUT``          seconds for process-group setup. Default 300.
``PYROCLAST_STEP_TIMEOUT``          collective timeout after the first step: a dead peer becomes a fast
                                    restart instead of a 30-minute hang. Default 60.
``MLFLOW_TRACKING_URI``             when set, global rank 0 logs to MLflow (extra ``pyroclast[tracking]``).
``PYROCLAST_MLFLOW_EXPERIMENT``     MLflow experiment name. Default ``pyroclast``.
==================================  ==========================================================================

Test-only knobs: ``PYROCLAST_STEP_SLEEP`` (seconds added per step), ``PYROCLAST_SAMPLE_LOG_DIR`` (each rank
logs the sample ids it trained on), ``PYROCLAST_FAULT`` (``<phase>@<step>[@<rank>]``, kills the process at
that point on the first attempt only; phases in :mod:`workloads.faults`).

Exit codes of a worker process:

=========================  ==================================================================================
:data:`EXIT_COMPLETED` 0   training complete (reason ``completed``).
:data:`EXIT_DRAINED` 75    stopped on a signal after committing a checkpoint of the current step;
                           restartable (reason ``drained``).
:data:`EXIT_FENCED` 76     a newer worker group claimed the checkpoint root (the ``fence`` file): stopped
                           without committing anything more (reason ``fenced``). torchrun's agent restarts
                           its worker group, which re-joins the rendezvous, at the cost of one
                           ``PET_MAX_RESTARTS``.
anything else              a failure (reason ``failed``).
=========================  ==================================================================================

The pod's exit code is torchrun's, not a worker's: a worker's non-zero exit only ends the pod (with 1) once
the agent has no restarts left, and the operator then sees the worker's ``error`` in the message. Local rank 0
writes a :class:`TerminationMessage` to the termination log on every exit; the operator reads it from the pod
status into ``status.lastCheckpoint`` and ``status.progress``: the workload needs no API access to report.

Progress lines (stdout and the progress file) are JSON objects with an ``event`` key: ``start``, ``resume``,
``progress`` (step, total_steps, epoch, samples_seen, loss, world_size, restart_count, committed_step,
step_s, save_s, ts), ``checkpoint`` (step, save_s, blocking_s, async), ``drain``, ``end``, ``claim`` (epoch,
owner: the group took the checkpoint root) and ``fenced`` (step, committed_step, epoch, owner, seen_epoch,
seen_owner: the claim found in the file).
"""

from __future__ import annotations

from typing import Final, NotRequired, TypedDict

# --- launcher env (torchrun) ------------------------------------------------------------------------------
PET_NNODES: Final = "PET_NNODES"
PET_NPROC_PER_NODE: Final = "PET_NPROC_PER_NODE"
PET_RDZV_BACKEND: Final = "PET_RDZV_BACKEND"
PET_RDZV_ENDPOINT: Final = "PET_RDZV_ENDPOINT"
PET_RDZV_ID: Final = "PET_RDZV_ID"
PET_RDZV_CONF: Final = "PET_RDZV_CONF"
PET_MAX_RESTARTS: Final = "PET_MAX_RESTARTS"
PET_LOCAL_ADDR: Final = "PET_LOCAL_ADDR"
TORCH_DISABLE_SHARE_RDZV_TCP_STORE: Final = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"

# --- workload env -----------------------------------------------------------------------------------------
JOB_NAME: Final = "PYROCLAST_JOB_NAME"
JOB_UID: Final = "PYROCLAST_JOB_UID"
ATTEMPT: Final = "PYROCLAST_ATTEMPT"
CHECKPOINT_DIR: Final = "PYROCLAST_CHECKPOINT_DIR"
CHECKPOINT_INTERVAL: Final = "PYROCLAST_CHECKPOINT_INTERVAL"
CHECKPOINT_KEEP: Final = "PYROCLAST_CHECKPOINT_KEEP"
CHECKPOINT_ASYNC: Final = "PYROCLAST_CHECKPOINT_ASYNC"
RESUME_FROM: Final = "PYROCLAST_RESUME_FROM"
TOTAL_STEPS: Final = "PYROCLAST_TOTAL_STEPS"
GLOBAL_BATCH: Final = "PYROCLAST_GLOBAL_BATCH"
DATASET_SIZE: Final = "PYROCLAST_DATASET_SIZE"
SEED: Final = "PYROCLAST_SEED"
LR: Final = "PYROCLAST_LR"
MODEL_WIDTH: Final = "PYROCLAST_MODEL_WIDTH"
MODEL_DEPTH: Final = "PYROCLAST_MODEL_DEPTH"
PROGRESS_FILE: Final = "PYROCLAST_PROGRESS_FILE"
TERMINATION_LOG: Final = "PYROCLAST_TERMINATION_LOG"
INIT_TIMEOUT: Final = "PYROCLAST_INIT_TIMEOUT"
STEP_TIMEOUT: Final = "PYROCLAST_STEP_TIMEOUT"
MLFLOW_TRACKING_URI: Final = "MLFLOW_TRACKING_URI"
MLFLOW_EXPERIMENT: Final = "PYROCLAST_MLFLOW_EXPERIMENT"
STEP_SLEEP: Final = "PYROCLAST_STEP_SLEEP"
SAMPLE_LOG_DIR: Final = "PYROCLAST_SAMPLE_LOG_DIR"
FAULT: Final = "PYROCLAST_FAULT"
PROGRESS_URL: Final = "PYROCLAST_PROGRESS_URL"
PROGRESS_TOKEN_FILE: Final = "PYROCLAST_PROGRESS_TOKEN_FILE"

DEFAULT_RDZV_PORT: Final = 29400

# --- exit codes -------------------------------------------------------------------------------------------
EXIT_COMPLETED: Final = 0
EXIT_FAILED: Final = 1
EXIT_DRAINED: Final = 75
"""Stopped on a signal after committing a checkpoint of the current step (``EX_TEMPFAIL``): restartable."""
EXIT_FENCED: Final = 76
"""A newer worker group owns the checkpoint root: stopped without committing; the agent re-joins."""

# --- checkpoints ------------------------------------------------------------------------------------------


def step_dir_name(step: int) -> str:
    """The directory a checkpoint of `step` is committed to, under ``PYROCLAST_CHECKPOINT_DIR``."""
    return f"step-{step:012d}"


# --- termination message ----------------------------------------------------------------------------------
DEFAULT_TERMINATION_LOG: Final = "/dev/termination-log"
"""Where the trainer container's termination message is written (its ``terminationMessagePath``)."""
MAX_TERMINATION_MESSAGE: Final = 4096
"""The kubelet keeps at most 4 KiB of a termination message; a longer one is not a report."""


class TerminationMessage(TypedDict):
    """What local rank 0 of every pod writes to the termination log on every exit (JSON)."""

    reason: str
    """``completed``, ``drained``, ``fenced`` or ``failed`` (see the exit codes)."""
    step: int | None
    total_steps: int | None
    loss: float | None
    committed_step: int | None
    committed_time: float | None
    """Unix seconds of the newest commit."""
    world_size: int
    error: str


# --- live progress ----------------------------------------------------------------------------------------
PROGRESS_PATH: Final = "/v1/progress"
"""Where the operator's progress endpoint takes ``POST`` reports."""
PROGRESS_AUDIENCE: Final = "pyroclast.dev/progress"
"""The audience of the workers' tokens: a token for the apiserver (or anything else) is refused there."""
PROGRESS_TOKEN_DIR: Final = "/var/run/secrets/pyroclast.dev/progress"
"""Where the projected token is mounted (read-only) in the trainer container."""
PROGRESS_TOKEN_FILE_PATH: Final = f"{PROGRESS_TOKEN_DIR}/token"
PROGRESS_MAX_BODY: Final = 4096
"""The largest report body the endpoint takes, in bytes."""


class ProgressCheckpoint(TypedDict):
    """The newest committed checkpoint: its step and its :func:`step_dir_name` directory."""

    step: int
    path: NotRequired[str]


class ProgressReport(TypedDict):
    """A live progress report, ``POST``-ed as JSON with ``Authorization: Bearer <token>``."""

    step: int
    totalSteps: NotRequired[int]
    loss: NotRequired[float]
    checkpoint: NotRequired[ProgressCheckpoint]


PROGRESS_FIELDS: Final = frozenset(ProgressReport.__annotations__)
"""The fields a report may hold; any other is refused (400)."""

LOST_CAUSES: Final = ("queued", "restarting", "preempted", "recomputed")
"""The keys of :attr:`ProgressAccounting.lostSeconds`: the causes of ``status.goodput.lost``."""


class ProgressAccounting(TypedDict):
    """The job's accounting as the operator last wrote it to the TorchJob's status (``status.usage`` and
    ``status.goodput``), so the workload, which has no API rights, can log it. Unknown values are left out:
    ``cost`` and ``currency`` without rates, ``goodputPercent`` before any held time."""

    cost: NotRequired[float]
    currency: NotRequired[str]
    goodputPercent: NotRequired[float]
    lostSeconds: NotRequired[dict[str, float]]
    """Seconds lost, by cause (:data:`LOST_CAUSES`)."""


class ProgressAnswer(TypedDict):
    """The endpoint's JSON answer to every request. A ``202`` carries the job's ``accounting`` once its
    status has usage or goodput; an older operator answers without it, which a worker must take as none."""

    status: int
    message: str
    accounting: NotRequired[ProgressAccounting]

"""Reference elastic torchrun training for Pyroclast, and the env contract the operator follows.

Run it under torchrun only: ``torchrun -m workloads.train`` with every launcher setting passed as ``PET_*``
env (torchrun reads ``PET_<FLAG>`` as the default of each flag). The rendezvous endpoint is served by
``python -m workloads.rendezvous`` in its own small pod, so losing any worker pod never loses the rendezvous.

Launcher env the operator sets (read by torchrun, not by this package):

==============================  ==========================================================================
``PET_NNODES``                  ``"min:max"`` pods.
``PET_NPROC_PER_NODE``          workers per pod (GPUs per pod; CPU count for CPU jobs).
``PET_RDZV_BACKEND``            ``c10d``.
``PET_RDZV_ENDPOINT``           ``<rendezvous service>:29400`` (the ``workloads.rendezvous`` server).
``PET_RDZV_ID``                 ``<job uid>-<attempt>``; a new id on every whole-job restart (the store is
                                in memory and a closed run id stays closed).
``PET_RDZV_CONF``               must contain ``is_host=false`` (the dedicated store is the host); also
                                ``last_call_timeout``, ``keep_alive_interval``, ``keep_alive_max_attempt``,
                                ``join_timeout``, ``read_timeout``.
``PET_MAX_RESTARTS``            worker-group restarts; each drained or lost pod costs survivors one.
``PET_LOCAL_ADDR``              this pod's resolvable address (pod IP or stable DNS name).
``TORCH_DISABLE_SHARE_RDZV_TCP_STORE``  ``1`` for elastic jobs (trainer store rebuilt every round).
==============================  ==========================================================================

Workload env (read by :mod:`workloads.config`; names are the constants below). The ``PYROCLAST_*`` names are
reserved for the operator at admission, so a TorchJob sets the training knobs as arguments instead:
``--total-steps``, ``--global-batch``, ``--dataset-size``, ``--seed``, ``--lr``, ``--model-width``,
``--model-depth``, ``--checkpoint-async 1``, ``--mlflow-experiment`` (flags win over env):

==================================  =========================================================================
``PYROCLAST_CHECKPOINT_DIR``        shared checkpoint root (required for resume); ``step-<N>`` dirs, a
                                    ``latest`` pointer and the MLflow run id live here.
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
``PYROCLAST_PROGRESS_URL``          set when the operator serves live progress: global rank 0 POSTs
                                    ``{step, totalSteps, loss, checkpoint}`` there every 10 steps
                                    (:class:`workloads.progress.LivePoster`), never failing training on
                                    an error.
``PYROCLAST_PROGRESS_TOKEN_FILE``   the pod-bound token to send as ``Authorization: Bearer`` (re-read on
                                    every post: the kubelet rotates it).
``PYROCLAST_TERMINATION_LOG``       final JSON message path. Default ``/dev/termination-log``.
``PYROCLAST_INIT_TIMEOUT``          seconds for process-group setup. Default 300.
``PYROCLAST_STEP_TIMEOUT``          collective timeout after the first step: a dead peer becomes a fast
                                    restart instead of a 30-minute hang. Default 60.
``MLFLOW_TRACKING_URI``             when set, global rank 0 logs to MLflow (extra ``pyroclast[tracking]``).
``PYROCLAST_MLFLOW_EXPERIMENT``     MLflow experiment name. Default ``pyroclast``.
==================================  =========================================================================

Test-only knobs: ``PYROCLAST_STEP_SLEEP`` (seconds added per step), ``PYROCLAST_SAMPLE_LOG_DIR`` (each rank
logs the sample ids it trained on), ``PYROCLAST_FAULT`` (``<phase>@<step>[@<rank>]``, kills the process at
that point on the first attempt only; phases in :mod:`workloads.faults`).

Exit codes: ``0`` training complete; ``75`` drained (stopped on a signal after committing a checkpoint of the
current step; restartable); anything else is a failure. Local rank 0 writes ``{"reason", "step",
"total_steps", "loss", "committed_step", "committed_time", "world_size", "error"}`` to the termination log on
every exit (``committed_time``: Unix seconds of the commit). The operator reads it from the pod status into
``status.lastCheckpoint`` and ``status.progress``: the workload needs no API access to report.

Progress lines (stdout and the progress file) are JSON objects with an ``event`` key: ``start``, ``resume``,
``progress`` (step, total_steps, epoch, samples_seen, loss, world_size, restart_count, committed_step,
step_s, save_s, ts), ``checkpoint`` (step, save_s, blocking_s, async), ``drain`` and ``end``.
"""

from typing import Final

PET_NNODES: Final = "PET_NNODES"
PET_NPROC_PER_NODE: Final = "PET_NPROC_PER_NODE"
PET_RDZV_BACKEND: Final = "PET_RDZV_BACKEND"
PET_RDZV_ENDPOINT: Final = "PET_RDZV_ENDPOINT"
PET_RDZV_ID: Final = "PET_RDZV_ID"
PET_RDZV_CONF: Final = "PET_RDZV_CONF"
PET_MAX_RESTARTS: Final = "PET_MAX_RESTARTS"
PET_LOCAL_ADDR: Final = "PET_LOCAL_ADDR"
TORCH_DISABLE_SHARE_RDZV_TCP_STORE: Final = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"

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

DEFAULT_TERMINATION_LOG: Final = "/dev/termination-log"
DEFAULT_RDZV_PORT: Final = 29400

EXIT_COMPLETED: Final = 0
EXIT_FAILED: Final = 1
EXIT_DRAINED: Final = 75

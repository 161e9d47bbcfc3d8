"""Names that identify the TorchJob API and what it reserves in worker pods (see also :mod:`api.contract`)."""

from __future__ import annotations

from typing import Final

GROUP: Final = "pyroclast.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "pyroclast.dev/v1alpha1"
KIND: Final = "TorchJob"
LIST_KIND: Final = "TorchJobList"
PLURAL: Final = "torchjobs"
SINGULAR: Final = "torchjob"
SHORT_NAMES: Final = ("tj",)
CATEGORIES: Final = ("pyroclast",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

VOLCANO_GROUP: Final = "scheduling.volcano.sh"
VOLCANO_VERSION: Final = "v1beta1"
VOLCANO_API_VERSION: Final = "scheduling.volcano.sh/v1beta1"

# Labels on everything Pyroclast creates for a job; the worker pod selector is built from them.
LABEL_JOB_NAME: Final = "pyroclast.dev/job-name"
LABEL_REPLICA_INDEX: Final = "pyroclast.dev/replica-index"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "pyroclast"
LABEL_ATTEMPT: Final = "pyroclast.dev/attempt"  # the gang attempt a worker pod belongs to

# The trainer container's name in every worker pod; extra containers may not take it.
TRAINER_CONTAINER: Final = "trainer"
# Volume names the operator adds to worker pods; user volumes may not start with RESERVED_VOLUME_PREFIX.
RESERVED_VOLUME_PREFIX: Final = "pyroclast-"
CHECKPOINT_VOLUME: Final = f"{RESERVED_VOLUME_PREFIX}checkpoint"  # the checkpoint source
PROGRESS_TOKEN_VOLUME: Final = f"{RESERVED_VOLUME_PREFIX}progress-token"  # the live-progress token
SHARED_MEMORY_VOLUME: Final = f"{RESERVED_VOLUME_PREFIX}shm"  # the trainer's memory-backed /dev/shm
SHARED_MEMORY_PATH: Final = "/dev/shm"
# Longest job name: pods are `<job>-worker-<index>` and must stay a DNS-1123 label (63 characters).
MAX_JOB_NAME_LENGTH: Final = 48

# Environment variable prefixes the operator owns: torchrun's launcher flags, its agent and our own contract.
RESERVED_ENV_PREFIXES: Final = ("PET_", "TORCHELASTIC_", "PYROCLAST_")
# Exact names torchrun sets for each worker process, and its store switches.
RESERVED_ENV_NAMES: Final = (
    "RANK",
    "LOCAL_RANK",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_NAME",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_WORLD_SIZE",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCH_DISABLE_SHARE_RDZV_TCP_STORE",
)


def is_reserved_env(name: str) -> bool:
    """Whether `name` is an environment variable the operator sets and users may not."""
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)

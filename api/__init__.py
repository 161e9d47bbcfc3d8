"""Pyroclast's API: the TorchJob resource, the Volcano objects it writes, and the CRD generated from them."""

from api.accounting import Goodput, LostTime, ResourceSeconds, Usage
from api.checkpoint import Checkpoint
from api.constants import (
    API_VERSION,
    CATEGORIES,
    CRD_NAME,
    GROUP,
    KIND,
    PLURAL,
    RESERVED_ENV_NAMES,
    RESERVED_ENV_PREFIXES,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    is_reserved_env,
)
from api.env import EnvVar
from api.meta import Condition, ConditionStatus, ObjectMeta, OwnerReference
from api.nodes import Nodes
from api.pod import PodTemplateOverlay
from api.podgroup import PodGroup, PodGroupPhase, PodGroupSpec, PodGroupStatus
from api.policy import FailurePolicy, RunPolicy
from api.queue import Queue, QueueSpec, QueueState, QueueStatus
from api.rendezvous import Rendezvous
from api.resources import ResourceRequirements
from api.scheduling import Scheduling
from api.spec import TorchJobSpec
from api.status import (
    CheckpointStatus,
    ConditionType,
    Disruption,
    DisruptionKind,
    Phase,
    Progress,
    Resize,
    TorchJobStatus,
)
from api.torchjob import TorchJob

__all__ = [
    "API_VERSION",
    "CATEGORIES",
    "CRD_NAME",
    "GROUP",
    "KIND",
    "PLURAL",
    "RESERVED_ENV_NAMES",
    "RESERVED_ENV_PREFIXES",
    "SHORT_NAMES",
    "SINGULAR",
    "VERSION",
    "Checkpoint",
    "CheckpointStatus",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "Disruption",
    "DisruptionKind",
    "EnvVar",
    "FailurePolicy",
    "Goodput",
    "LostTime",
    "Nodes",
    "ObjectMeta",
    "OwnerReference",
    "Phase",
    "PodGroup",
    "PodGroupPhase",
    "PodGroupSpec",
    "PodGroupStatus",
    "PodTemplateOverlay",
    "Progress",
    "Queue",
    "QueueSpec",
    "QueueState",
    "QueueStatus",
    "Rendezvous",
    "Resize",
    "ResourceRequirements",
    "ResourceSeconds",
    "RunPolicy",
    "Scheduling",
    "TorchJob",
    "TorchJobSpec",
    "TorchJobStatus",
    "Usage",
    "is_reserved_env",
]

"""TorchJob: distributed PyTorch training run by torchrun on a Volcano gang."""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from api.base import KubeModel
from api.cel import rule
from api.constants import API_VERSION, KIND, MAX_JOB_NAME_LENGTH
from api.meta import ObjectMeta
from api.spec import TorchJobSpec
from api.status import TorchJobStatus

NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MESSAGE = (
    f"metadata.name must start with a letter and be at most {MAX_JOB_NAME_LENGTH} characters: it names the "
    "job's Service and pods"
)

# metadata.name at the root: the only part of metadata a CRD schema may constrain.
METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {
            "description": "Job name: starts with a letter, at most 48 characters; it prefixes the names of "
            "the job's pods, Service and PodGroup.",
            "type": "string",
            "maxLength": MAX_JOB_NAME_LENGTH,
            "x-kubernetes-validations": [rule(f"self.matches('{NAME_PATTERN}')", NAME_MESSAGE)],
        }
    },
}


class TorchJob(KubeModel):
    """Distributed PyTorch training: nodes (pods) each running torchrun with nprocPerNode processes,
    gang-scheduled by Volcano, restarted as a whole on failure or preemption, resumed from its checkpoint.
    """

    api_version: Literal["pyroclast.dev/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["TorchJob"] = Field(default=KIND, description="Kind.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: TorchJobSpec = Field(
        description="What to train (image, command, env, resources), on how many nodes, and under which "
        "scheduling, checkpoint, rendezvous, failure and run policies."
    )
    status: TorchJobStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        name = self.metadata.name
        if name is None and self.metadata.generate_name is not None:
            # The apiserver appends 5 lower-case alphanumerics to a prefix cut to 58 characters.
            name = self.metadata.generate_name[:58] + "xxxxx"
        if name is not None and (len(name) > MAX_JOB_NAME_LENGTH or re.fullmatch(NAME_PATTERN, name) is None):
            raise ValueError(NAME_MESSAGE)
        return self

    def update_errors(self, old: TorchJob) -> list[str]:
        """What the apiserver refuses when `old` is updated to this object (CEL transition rules)."""
        return self.spec.update_errors(old.spec)

    @classmethod
    def from_k8s(cls, obj: dict[str, Any]) -> TorchJob:
        """Parse an object as the apiserver returns it."""
        return cls.model_validate(obj)

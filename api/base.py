"""The base class of every API model: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class KubeModel(BaseModel):
    """A Kubernetes object or part of one. Unknown fields are refused, as strict `kubectl` validation does."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The JSON-ready wire form: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class OpenKubeModel(KubeModel):
    """A model of an object whose owner may add fields we do not model; they are kept on a round trip."""

    model_config = ConfigDict(extra="allow")

"""Environment variables of the trainer container; the launcher's own variables are reserved."""

from __future__ import annotations

from typing import Annotated, Final, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from api.base import KubeModel
from api.cel import rule, rules
from api.constants import RESERVED_ENV_NAMES, RESERVED_ENV_PREFIXES, is_reserved_env
from api.fields import ENV_NAME_PATTERN, Unstructured


def reserved_env_cel(name: str) -> str:
    """A CEL expression true when the string `name` (a CEL expression) is a reserved variable name."""
    return " || ".join(
        [f"{name}.startsWith('{prefix}')" for prefix in RESERVED_ENV_PREFIXES]
        + [f"{name} in [" + ", ".join(f"'{n}'" for n in RESERVED_ENV_NAMES) + "]"]
    )


_RESERVED_ENV_CEL = reserved_env_cel("self.name")


_RESERVED_REASON: Final = " is reserved: Pyroclast sets it for torchrun and the workload"


def reserved_env_message(name: str) -> str:
    """The complaint about a user-set reserved variable, as the apiserver words it."""
    return f"env {name}{_RESERVED_REASON}"


class EnvVar(KubeModel):
    """An environment variable of the trainer container."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                f"!({_RESERVED_ENV_CEL})",
                message_expression=f"'env ' + self.name + '{_RESERVED_REASON}'",
                field_path=".name",
                reason="FieldValueForbidden",
            ),
            rule(
                "!(has(self.value) && has(self.valueFrom))",
                "env value and valueFrom are mutually exclusive",
                field_path=".valueFrom",
            ),
        )
    )

    name: Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN, max_length=256)] = Field(
        description="Variable name. Names starting with PET_, TORCHELASTIC_ or PYROCLAST_, and the variables "
        "torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, ...) are reserved."
    )
    value: Annotated[str, StringConstraints(max_length=32768)] | None = Field(
        default=None, description="Literal value."
    )
    value_from: Unstructured | None = Field(
        default=None, description="A core EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, ...)."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if is_reserved_env(self.name):
            raise ValueError(reserved_env_message(self.name))
        if self.value is not None and self.value_from is not None:
            raise ValueError("env value and valueFrom are mutually exclusive")
        return self

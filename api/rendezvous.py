"""torchrun's c10d rendezvous settings, passed to every node as PET_RDZV_CONF and PET_MAX_RESTARTS."""

from __future__ import annotations

from typing import Annotated, Any, Final, Self

from pydantic import ConfigDict, Field, StrictInt, model_validator

from api.base import KubeModel
from api.cel import rule, rules
from api.duration import Duration, check_duration, duration_message, duration_rule, duration_seconds

# field -> (default, lowest, highest)
_BOUNDS: Final = {
    "joinTimeout": ("10m", "10s", "24h"),
    "lastCallTimeout": ("10s", "0s", "1h"),
    "closeTimeout": ("30s", "1s", "1h"),
    "readTimeout": ("5m", "1s", "1h"),
    "keepAliveInterval": ("5s", "1s", "5m"),
}
_LAST_CALL_MESSAGE: Final = "rendezvous.lastCallTimeout must be shorter than rendezvous.joinTimeout"


def _timeout(name: str, what: str) -> Any:
    default, lowest, highest = _BOUNDS[name]
    return Field(
        default=default,
        description=f"{what} ({lowest} to {highest}).",
        json_schema_extra=rules(
            rule(duration_rule(lowest, highest), duration_message(f"rendezvous.{name}", lowest, highest))
        ),
    )


class Rendezvous(KubeModel):
    """Tuning of torchrun's elastic c10d rendezvous; the defaults suit gang-scheduled jobs."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                # Guarded: the apiserver also checks this rule against the bare `default: {}`.
                "!has(self.lastCallTimeout) || !has(self.joinTimeout) || "
                "duration(self.lastCallTimeout) < duration(self.joinTimeout)",
                _LAST_CALL_MESSAGE,
                field_path=".lastCallTimeout",
            )
        )
    )

    join_timeout: Duration = _timeout(
        "joinTimeout", "How long one rendezvous round may take before the nodes give up"
    )
    last_call_timeout: Duration = _timeout(
        "lastCallTimeout", "Extra wait for more nodes once nodes.min have joined"
    )
    close_timeout: Duration = _timeout("closeTimeout", "How long closing a rendezvous may take")
    read_timeout: Duration = _timeout(
        "readTimeout", "Timeout of rendezvous store operations; cover the start-up skew between pods"
    )
    keep_alive_interval: Duration = _timeout("keepAliveInterval", "Heartbeat period of each node")
    keep_alive_max_attempts: Annotated[StrictInt, Field(ge=1, le=100)] = Field(
        default=3, description="Missed heartbeats after which a node is dropped from the rendezvous."
    )
    max_restarts: Annotated[StrictInt, Field(ge=0, le=1000)] = Field(
        default=3,
        description="torchrun's in-place worker restarts (--max-restarts) before the node fails; membership "
        "changes do not count. The gang restarts on top of that are failurePolicy's.",
    )
    port: Annotated[StrictInt, Field(ge=1024, le=65535)] = Field(
        default=29400, description="TCP port of the rendezvous store."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        values = {
            "joinTimeout": self.join_timeout,
            "lastCallTimeout": self.last_call_timeout,
            "closeTimeout": self.close_timeout,
            "readTimeout": self.read_timeout,
            "keepAliveInterval": self.keep_alive_interval,
        }
        for name, value in values.items():
            _, lowest, highest = _BOUNDS[name]
            check_duration(f"rendezvous.{name}", value, lowest, highest)
        if duration_seconds(self.last_call_timeout) >= duration_seconds(self.join_timeout):
            raise ValueError(_LAST_CALL_MESSAGE)
        return self

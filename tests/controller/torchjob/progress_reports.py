"""Progress reports as workers send them, and how the operator reviews them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from api import contract
from controller.torchjob.progress import (
    POD_NAME_CLAIM,
    POD_UID_CLAIM,
    Body,
    Identity,
    LiveReport,
    Rejected,
)
from tests.controller.torchjob.plans import T0

CKPT: dict[str, Any] = {"checkpoint": {"volume": {"emptyDir": {}}, "path": "/ckpt/"}}


URL = "http://pyroclast-progress.pyroclast-system.svc:8082"


def rejected(status: int, call: Any, *args: Any) -> str:
    with pytest.raises(Rejected) as caught:
        call(*args)
    assert caught.value.status == status
    return caught.value.message


def review(
    *,
    authenticated: bool = True,
    audiences: list[str] | None = None,
    username: str = "system:serviceaccount:team-a:default",
    pod_claims: bool = True,
    error: str | None = None,
) -> dict[str, Any]:
    extra = {POD_NAME_CLAIM: ["llama-worker-0"], POD_UID_CLAIM: ["uid-0-0"]} if pod_claims else {}
    status: dict[str, Any] = {"authenticated": authenticated}
    if authenticated:
        status["user"] = {"username": username, "extra": extra}
        status["audiences"] = [contract.PROGRESS_AUDIENCE] if audiences is None else audiences
    if error:
        status["error"] = error
    return {"status": status}


IDENTITY = Identity("team-a", "default", "llama-worker-0", "uid-0-0")


def live(job_uid: str, step: int, *, ckpt: int | None = None, at: int = 0) -> LiveReport:
    return LiveReport(job_uid, "llama-worker-0", Body(step, 100, 0.5, ckpt, None), T0 + timedelta(seconds=at))

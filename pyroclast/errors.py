# pyright: strict
"""Errors a person can act on, and the exit codes of every `pyroclast` command that talks to a cluster.

SDK functions raise `PyroclastError` subclasses (or the runtime's typed `controller.runtime.errors.ApiError`);
`explain` turns either into one message that says what to do, and the exit code the command returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Final

from controller.runtime.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TransportError,
    Unauthorized,
)

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOT_FOUND: Final = 3
EXIT_REFUSED: Final = 4
EXIT_JOB_FAILED: Final = 5
EXIT_TIMEOUT: Final = 6
EXIT_INTERRUPTED: Final = 130

EXIT_CODES_HELP: Final = """\
exit codes:
  0  done (for `job wait`: the job reached the wanted state)
  1  failed: cluster unreachable, credentials rejected, not allowed by RBAC, unexpected API error
  2  usage: bad flag, bad YAML, or a spec the apiserver refused
  3  queue not found, or the TorchJob, priority class, namespace or worker named does not exist
  4  conflict or refused: already exists, queue closed (submit), queue still used by TorchJobs (delete),
     protected queue
  5  `job wait`: the job failed
  6  timed out (`job wait --timeout`, queue open/close --wait)
  130  interrupted (Ctrl-C)
"""


class PyroclastError(Exception):
    """An error with a message that names the fix, and the exit code the command returns for it."""

    exit_code: ClassVar[int] = EXIT_FAILED


class NotFoundError(PyroclastError):
    """Something the command names does not exist."""

    exit_code: ClassVar[int] = EXIT_NOT_FOUND


class RefusedError(PyroclastError):
    """The cluster holds something that forbids the change."""

    exit_code: ClassVar[int] = EXIT_REFUSED


class UsageError(PyroclastError):
    """A flag or document that can never work; raised before any connection is made."""

    exit_code: ClassVar[int] = EXIT_USAGE


class CredentialsError(PyroclastError):
    """The kubeconfig (or in-cluster account) could not be loaded."""


def _rbac(exc: ApiError) -> str:
    return (
        f"not allowed by RBAC: {exc.message}. Check with "
        "`kubectl auth can-i <verb> <resource> -n <namespace>` "
        "and ask a cluster admin for a Role (or ClusterRole for queues) granting it"
    )


def explain(
    exc: BaseException, *, noun: str, not_found: Callable[[NotFound], str | None] | None = None
) -> tuple[str, int] | None:
    """(message, exit code) for an error a command can meet; None for anything else (a bug: let it raise).

    `noun` names what the command writes ("queue", "TorchJob") in generic messages; `not_found` may word a
    404 better than the apiserver does (None: use the generic wording).
    """
    if isinstance(exc, PyroclastError):
        return str(exc), exc.exit_code
    if isinstance(exc, TransportError):
        return (
            f"cluster unreachable: {exc.message}. Check that the cluster is up and that --kubeconfig / "
            "--context (or KUBECONFIG) point at it",
            EXIT_FAILED,
        )
    if isinstance(exc, Unauthorized):
        return (
            f"the cluster rejected the credentials: {exc.message or exc.reason}. Refresh the kubeconfig's "
            "token or certificate (or pick another --context)",
            EXIT_FAILED,
        )
    if isinstance(exc, NotFound):
        message = not_found(exc) if not_found else None
        return message or _not_found(exc), EXIT_NOT_FOUND
    if isinstance(exc, BadRequest | Forbidden) and "admission webhook" in exc.message:
        return f"an admission webhook refused the {noun}: {exc.message}", EXIT_REFUSED
    if isinstance(exc, Forbidden):
        return _rbac(exc), EXIT_FAILED
    if isinstance(exc, BadRequest | Invalid):
        return f"the apiserver refused the {noun}: {exc.message}", EXIT_USAGE
    if isinstance(exc, AlreadyExists):
        return f"{exc.message}; pick another name or delete the existing one first", EXIT_REFUSED
    if isinstance(exc, Conflict):
        return f"conflict: {exc.message}; someone else changed it at the same time, retry", EXIT_REFUSED
    if isinstance(exc, ApiError):
        return f"the apiserver answered {exc}", EXIT_FAILED
    return None


def _not_found(exc: NotFound) -> str:
    details: dict[str, Any] = exc.status.get("details") or {}
    if details.get("kind") == "namespaces":
        return f"namespace {details.get('name')} does not exist; pick another with -n/--namespace"
    if not details:  # a 404 without details: the resource type itself is not served
        return (
            f"{exc.message or 'the server could not find the requested resource'}: is the CRD installed? "
            "TorchJobs need `kubectl apply -f deploy/crd/`, queues need Volcano"
        )
    return exc.message or str(exc)


__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_JOB_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "CredentialsError",
    "NotFoundError",
    "PyroclastError",
    "RefusedError",
    "UsageError",
    "explain",
]

"""Typed API errors, mapped from HTTP status codes and Kubernetes ``Status`` bodies."""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """An error answered by the API server (or the transport reaching it).

    ``code`` is the HTTP status (0 for transport failures), ``reason`` the ``Status.reason``
    (e.g. ``"NotFound"``, ``"Conflict"``, ``"Expired"``) and ``status`` the decoded body.
    """

    def __init__(self, code: int, reason: str = "", message: str = "", status: dict[str, Any] | None = None):
        super().__init__(f"{code} {reason}: {message}".strip())
        self.code = code
        self.reason = reason
        self.message = message
        self.status: dict[str, Any] = status or {}

    @property
    def retriable(self) -> bool:
        """True for errors worth retrying after a pause (throttling, server errors, transport)."""
        return self.code in (0, 429) or self.code >= 500


class BadRequest(ApiError):
    """400."""


class Unauthorized(ApiError):
    """401."""


class Forbidden(ApiError):
    """403."""


class NotFound(ApiError):
    """404."""


class MethodNotAllowed(ApiError):
    """405."""


class Conflict(ApiError):
    """409 with a reason other than AlreadyExists (usually a resourceVersion mismatch)."""


class AlreadyExists(Conflict):
    """409 AlreadyExists, from a create."""


class Gone(ApiError):
    """410 Gone / Expired: the requested resourceVersion is too old; relist."""


class Invalid(ApiError):
    """422 Invalid."""


class TooManyRequests(ApiError):
    """429 (API priority and fairness, or an eviction blocked by a budget)."""


class ServerError(ApiError):
    """5xx."""


class TransportError(ApiError):
    """The request never got an HTTP answer: connection refused or reset, timeout, TLS failure."""

    def __init__(self, message: str):
        super().__init__(0, "TransportError", message)


_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def error_from_status(code: int, body: bytes | dict[str, Any] | None) -> ApiError:
    """Build the typed error for an HTTP ``code`` and a ``Status`` body (raw or decoded)."""
    status: dict[str, Any] = {}
    if isinstance(body, dict):
        status = body
    elif body:
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            status = dict(decoded)  # pyright: ignore[reportUnknownArgumentType]
        else:
            status = {"message": body[:512].decode("utf-8", "replace")}
    reason = str(status.get("reason", ""))
    message = str(status.get("message", ""))
    code = int(status.get("code", code) or code)
    if code == 409 and reason == "AlreadyExists":
        cls: type[ApiError] = AlreadyExists
    elif reason in ("Expired", "Gone"):
        cls = Gone
    elif code >= 500:
        cls = ServerError
    else:
        cls = _BY_CODE.get(code, ApiError)
    return cls(code, reason, message, status)

"""The manager's ASGI apps: ``/healthz`` and ``/readyz`` from named checks, ``/metrics`` from the registry.

Served by :class:`~controller.runtime.httpserver.HttpServer`; ``/metrics`` is prometheus-client's own ASGI app
(text or OpenMetrics by the ``Accept`` header, gzip when asked, ``name[]`` filters).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import cast

from prometheus_client import make_asgi_app  # pyright: ignore[reportUnknownVariableType]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.runtime import metrics

log = logging.getLogger(__name__)

Check = Callable[[], bool]


def probes_app(health: Mapping[str, Check], ready: Mapping[str, Check]) -> Starlette:
    """``GET /healthz`` and ``GET /readyz``: 200 ``ok`` when every named check passes, else 500 listing the
    failures. The mappings are read on every request, so checks added later count."""
    return Starlette(
        routes=[
            Route("/healthz", _checks_endpoint(health), methods=["GET"]),
            Route("/readyz", _checks_endpoint(ready), methods=["GET"]),
        ]
    )


def metrics_app() -> Starlette:
    """``GET /metrics``: the controller registry."""
    exposition = cast(ASGIApp, make_asgi_app(registry=metrics.REGISTRY))
    return Starlette(routes=[Route("/metrics", _Asgi(exposition), methods=["GET"])])


class _Asgi:
    """An ASGI app as a route's endpoint (Starlette wraps plain functions as request handlers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _checks_endpoint(checks: Mapping[str, Check]) -> Callable[[Request], Awaitable[PlainTextResponse]]:
    async def endpoint(_request: Request) -> PlainTextResponse:  # async: checks run on the loop, not a thread
        failed = [name for name, check in checks.items() if not _safe(check)]
        if failed:
            return PlainTextResponse("failed: " + ", ".join(failed) + "\n", status_code=500)
        return PlainTextResponse("ok\n")

    return endpoint


def _safe(check: Check) -> bool:
    try:
        return check()
    except Exception:
        log.exception("health check failed")
        return False

"""The HTTP transport under :class:`~controller.client.Client`, and its kr8s implementation.

kr8s supplies only kubeconfig / in-cluster auth and the httpx session; everything above raw
bytes (decoding, errors, watch semantics) is ours. The :class:`Transport` protocol also lets
tests drive the client from an in-memory fake API server.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import kr8s
import kr8s.asyncio

from controller.errors import TransportError

Params = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    """A complete (non-streaming) HTTP answer."""

    status: int
    body: bytes


class StreamResponse(Protocol):
    """A streaming HTTP answer: the status, then the body line by line."""

    @property
    def status(self) -> int: ...

    async def read(self) -> bytes:
        """The whole remaining body (used for error answers)."""
        ...

    def lines(self) -> AsyncIterator[bytes]:
        """Non-empty body lines as they arrive."""
        ...


class Transport(Protocol):
    """What the client needs from HTTP: a request, and a streaming request."""

    @property
    def host(self) -> str:
        """The server's host[:port], used as the ``host`` metric label."""
        ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> Response: ...

    def stream(
        self, method: str, path: str, *, params: Params | None = None, request_timeout: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]: ...


def _split(path: str) -> tuple[str, str]:
    """Split ``/apis/g/v/...`` into kr8s's (base, url) so its URL builder reproduces ``path``."""
    stripped = path.lstrip("/")
    head, _, rest = stripped.partition("/")
    return "/" + head, rest


class _HttpxStream:
    def __init__(self, response: httpx.Response):
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    async def read(self) -> bytes:
        return await self._response.aread()

    async def lines(self) -> AsyncIterator[bytes]:
        async for line in self._response.aiter_lines():
            if line:
                yield line.encode()


class _StaticStream:
    """An error answer to a streaming request, already read."""

    def __init__(self, status: int, body: bytes):
        self._status = status
        self._body = body

    @property
    def status(self) -> int:
        return self._status

    async def read(self) -> bytes:
        return self._body

    async def lines(self) -> AsyncIterator[bytes]:
        for line in self._body.splitlines():
            if line:
                yield line


def _error_response(err: Exception) -> Response:
    """The HTTP answer behind a kr8s error (``ServerError``, or kr8s failing to build one)."""
    response = getattr(err, "response", None)
    if not isinstance(response, httpx.Response):
        context = err.__context__
        response = context.response if isinstance(context, httpx.HTTPStatusError) else None
    if response is None:
        return Response(500, str(err).encode())
    return Response(response.status_code, response.content)


def _is_kr8s_status_error(err: Exception) -> bool:
    # kr8s raises KeyError while wrapping a 4xx whose JSON body has no "message"
    return isinstance(err, kr8s.ServerError) or (
        isinstance(err, KeyError) and isinstance(err.__context__, httpx.HTTPStatusError)
    )


class Kr8sTransport:
    """HTTP over a kr8s ``Api``: kr8s's auth, TLS and session, our own status handling.

    kr8s re-authenticates on 401/403 (exec plugins, rotated service-account tokens) before it
    gives up with ``kr8s.ServerError``, whose response we turn back into a plain status + body.
    Connection failures and timeouts become :class:`~controller.errors.TransportError`.
    """

    def __init__(self, api: Any):
        self._api = api
        self._host = httpx.URL(str(api.auth.server)).netloc.decode()

    @classmethod
    async def connect(cls, kubeconfig: str | Path | None = None, context: str | None = None) -> Kr8sTransport:
        """Resolve credentials (kubeconfig, then in-cluster service account) through kr8s."""
        with warnings.catch_warnings():
            # kr8s warns about server versions newer than it was tested with; we only use its transport
            warnings.filterwarnings(
                "ignore", message="Kubernetes version .* is not supported", category=UserWarning
            )
            api = await kr8s.asyncio.api(kubeconfig=str(kubeconfig) if kubeconfig else None, context=context)
        return cls(api)

    @property
    def host(self) -> str:
        return self._host

    @staticmethod
    def _timeout(seconds: float | None) -> httpx.Timeout:
        return httpx.Timeout(seconds, connect=10.0)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> Response:
        base, url = _split(path)
        headers = {"Content-Type": content_type} if content_type else None
        try:
            async with self._api.call_api(
                method,
                version="",
                base=base,
                url=url,
                params=dict(params or {}),
                content=body,
                headers=headers,
                timeout=self._timeout(request_timeout),
            ) as resp:
                response: httpx.Response = resp
                return Response(response.status_code, response.content)
        except (kr8s.ServerError, KeyError) as err:
            if not _is_kr8s_status_error(err):
                raise
            return _error_response(err)
        except (httpx.HTTPError, kr8s.APITimeoutError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Params | None = None, request_timeout: float | None = None
    ) -> AsyncGenerator[StreamResponse]:
        base, url = _split(path)
        async with contextlib.AsyncExitStack() as stack:
            try:
                resp: httpx.Response = await stack.enter_async_context(
                    self._api.call_api(
                        method,
                        version="",
                        base=base,
                        url=url,
                        stream=True,
                        params=dict(params or {}),
                        timeout=self._timeout(request_timeout),
                    )
                )
            except (kr8s.ServerError, KeyError) as err:
                if not _is_kr8s_status_error(err):
                    raise
                error = _error_response(err)
                yield _StaticStream(error.status, error.body)
                return
            except (httpx.HTTPError, kr8s.APITimeoutError) as exc:
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
            try:
                yield _HttpxStream(resp)
            except (httpx.HTTPError, kr8s.APITimeoutError) as exc:  # the stream broke mid-way
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc

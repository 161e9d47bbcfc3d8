"""The HTTP transport under :class:`~controller.client.Client`, and its httpx implementation.

kr8s supplies only credentials (kubeconfig, exec plugins, in-cluster service account); each transport owns
its own ``httpx.AsyncClient``, so no two clients share a session, and everything above raw bytes (decoding,
errors, watch semantics) is ours. The :class:`Transport` protocol also lets tests drive the client from an
in-memory fake API server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import anyio
import httpx
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

    async def aclose(self) -> None:
        """Release connections; the transport is not used afterwards."""
        ...


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


IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE"})
"""Methods resent once when the connection broke before an answer (a stale keep-alive connection).
PUT carries a resourceVersion and DELETE of a gone object answers 404, so a resend cannot act twice;
POST and PATCH are resent only when the connection was never made."""

_STALE_CONNECTION = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def _timeout(seconds: float | None) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=10.0)


class HttpxTransport:
    """HTTP/1.1 to the apiserver over a private ``httpx.AsyncClient``, credentials loaded by kr8s.

    On a 401 the credentials are reloaded once (rotated service-account tokens, exec plugins) and the
    request resent. Connection failures and timeouts become :class:`~controller.errors.TransportError`.
    """

    def __init__(self, auth: Any):
        self._auth = auth
        self._host = httpx.URL(str(auth.server)).netloc.decode()
        self._client: httpx.AsyncClient | None = None
        self._generation = 0  # bumped each time credentials are reloaded
        self._lock = anyio.Lock()

    @classmethod
    async def connect(
        cls, kubeconfig: str | Path | None = None, context: str | None = None
    ) -> HttpxTransport:
        """Resolve credentials: the kubeconfig (or ``KUBECONFIG``), else the in-cluster service account."""
        # An Api built outside kr8s's per-event-loop factory: only its auth is used, never its session.
        api: Any = kr8s.asyncio.Api(
            bypass_factory=True, kubeconfig=str(kubeconfig) if kubeconfig else None, context=context
        )
        await api.auth.reauthenticate()
        return cls(api.auth)

    @property
    def host(self) -> str:
        return self._host

    async def _session(self) -> tuple[httpx.AsyncClient, int]:
        async with self._lock:
            if self._client is None:
                self._client = await self._new_client()
            return self._client, self._generation

    async def _new_client(self) -> httpx.AsyncClient:
        auth = self._auth
        headers = {"User-Agent": "pyroclast"}
        if auth.token:
            headers["Authorization"] = f"Bearer {auth.token}"
        return httpx.AsyncClient(
            base_url=str(auth.server),
            headers=headers,
            verify=await auth.ssl_context(),
            proxy=auth.proxy,
            follow_redirects=True,
        )

    async def _reauthenticate(self, seen: int) -> None:
        """Reload credentials unless another request already did since generation `seen`."""
        async with self._lock:
            if self._generation != seen:
                return
            await self._auth.reauthenticate()
            old, self._client = self._client, await self._new_client()
            self._generation += 1
        if old is not None:
            await old.aclose()

    def _extensions(self) -> dict[str, Any] | None:
        name = self._auth.tls_server_name
        return {"sni_hostname": name} if name else None

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
        headers = {"Content-Type": content_type} if content_type else None
        resent = reauthenticated = False
        while True:
            client, generation = await self._session()
            try:
                answer = await client.request(
                    method,
                    path,
                    params=dict(params or {}),
                    content=body,
                    headers=headers,
                    timeout=_timeout(request_timeout),
                    extensions=self._extensions(),
                )
            except httpx.ConnectError as exc:
                if resent:
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                resent = True
                continue
            except _STALE_CONNECTION as exc:
                if resent or method not in IDEMPOTENT:
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                resent = True
                continue
            except httpx.HTTPError as exc:
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
            if answer.status_code == 401 and not reauthenticated:
                reauthenticated = True
                await self._reauthenticate(generation)
                continue
            return Response(answer.status_code, answer.content)

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Params | None = None, request_timeout: float | None = None
    ) -> AsyncGenerator[StreamResponse]:
        reauthenticated = False
        while True:
            client, generation = await self._session()
            async with contextlib.AsyncExitStack() as stack:
                try:
                    answer = await stack.enter_async_context(
                        client.stream(
                            method,
                            path,
                            params=dict(params or {}),
                            timeout=_timeout(request_timeout),
                            extensions=self._extensions(),
                        )
                    )
                except httpx.HTTPError as exc:
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                if answer.status_code == 401 and not reauthenticated:
                    reauthenticated = True
                    await answer.aclose()
                    await self._reauthenticate(generation)
                    continue
                try:
                    yield _HttpxStream(answer)
                except httpx.HTTPError as exc:  # the stream broke mid-way
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                return

    async def aclose(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await client.aclose()

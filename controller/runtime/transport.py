"""The HTTP transport under :class:`~controller.runtime.client.Client`, and its httpx implementation.

kr8s supplies only credentials (kubeconfig, exec plugins, in-cluster service account); each transport owns
its own ``httpx.AsyncClient``, so no two clients share a session, and everything above raw bytes (decoding,
errors, watch semantics) is ours. The :class:`Transport` protocol also lets tests drive the client from an
in-memory fake API server.
"""

from __future__ import annotations

import contextlib
import gzip
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlencode

import anyio
import httpcore
import httpx
import kr8s.asyncio

from controller.runtime.errors import TransportError
from controller.runtime.pool import ConnectionPool

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

    @property
    def server(self) -> str:
        """The server's base URL (``https://host:port``), for the ``url.full`` of client spans."""
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

_NOT_CONNECTED = (httpx.ConnectError, httpcore.ConnectError)
_STALE_CONNECTION = (
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpcore.ReadError,
    httpcore.WriteError,
    httpcore.RemoteProtocolError,
)
_HTTP_ERRORS = (
    httpx.HTTPError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)


def _timeout(seconds: float | None) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=10.0)


class _Session:
    """One set of credentials in use: the pool for plain requests (``None`` behind a proxy, where httpx
    sends them too) and an httpx client for watches."""

    def __init__(self, auth: Any, client: httpx.AsyncClient, pool: ConnectionPool | None, generation: int):
        self.client = client
        self.pool = pool
        self.generation = generation
        server = httpx.URL(str(auth.server))
        self._prefix = server.raw_path.rstrip(b"/")
        self._origin = httpcore.Origin(
            server.raw_scheme, server.raw_host, server.port or _PORTS[server.scheme]
        )
        self._headers: list[tuple[bytes, bytes]] = [(b"Host", server.netloc), (b"User-Agent", b"pyroclast")]
        if auth.token:
            self._headers.append((b"Authorization", f"Bearer {auth.token}".encode()))
        name = auth.tls_server_name
        self.extensions: dict[str, Any] = {"sni_hostname": name} if name else {}

    async def send(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: bytes | None,
        content_type: str | None,
        request_timeout: float | None,
    ) -> Response:
        if self.pool is None:
            answer = await self.client.request(
                method,
                path,
                params=dict(params or {}),
                content=body,
                headers={"Content-Type": content_type} if content_type else None,
                timeout=_timeout(request_timeout),
                extensions=self.extensions,
            )
            return Response(answer.status_code, answer.content)
        target = self._prefix + path.encode()
        if params:
            target += b"?" + urlencode(params).encode()
        headers = list(self._headers)
        if method == "GET":
            headers.append((b"Accept-Encoding", b"gzip"))
        if body is not None:
            headers.append((b"Content-Length", str(len(body)).encode()))
            if content_type:
                headers.append((b"Content-Type", content_type.encode()))
        timeout = {
            "connect": 10.0,
            "read": request_timeout,
            "write": request_timeout,
            "pool": request_timeout,
        }
        request = httpcore.Request(
            method,
            httpcore.URL(
                scheme=self._origin.scheme, host=self._origin.host, port=self._origin.port, target=target
            ),
            headers=headers,
            content=body,
            extensions={**self.extensions, "timeout": timeout},
        )
        status, answer_headers, content = await self.pool.request(request)
        if any(k.lower() == b"content-encoding" and v.lower() == b"gzip" for k, v in answer_headers):
            content = gzip.decompress(content)
        return Response(status, content)

    async def aclose(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()
        await self.client.aclose()


def _origin(server: httpx.URL) -> httpcore.Origin:
    return httpcore.Origin(server.raw_scheme, server.raw_host, server.port or _PORTS[server.scheme])


_PORTS: Final = {"https": 443, "http": 80}


class HttpxTransport:
    """HTTP/1.1 to the apiserver, credentials loaded by kr8s: requests over our own O(1) connection pool
    (:class:`~controller.runtime.pool.ConnectionPool`, on httpcore), watches over a private
    ``httpx.AsyncClient``.

    On a 401 the credentials are reloaded once (rotated service-account tokens, exec plugins) and the request
    resent. Connection failures and timeouts become :class:`~controller.runtime.errors.TransportError`.
    """

    def __init__(self, auth: Any, *, max_connections: int = 64):
        self._auth = auth
        self._host = httpx.URL(str(auth.server)).netloc.decode()
        self._max_connections = max_connections
        self._session: _Session | None = None
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

    @property
    def server(self) -> str:
        return str(self._auth.server).rstrip("/")

    async def _current(self) -> _Session:
        async with self._lock:
            if self._session is None:
                self._session = await self._new_session()
            return self._session

    async def _new_session(self) -> _Session:
        auth = self._auth
        headers = {"User-Agent": "pyroclast"}
        if auth.token:
            headers["Authorization"] = f"Bearer {auth.token}"
        verify = await auth.ssl_context()
        client = httpx.AsyncClient(
            base_url=str(auth.server), headers=headers, verify=verify, proxy=auth.proxy, follow_redirects=True
        )
        server = httpx.URL(str(auth.server))
        pool = None
        if not auth.proxy:
            context = verify if isinstance(verify, ssl.SSLContext) else None
            pool = ConnectionPool(_origin(server), context, max_connections=self._max_connections)
        return _Session(auth, client, pool, self._generation)

    async def _reauthenticate(self, seen: int) -> None:
        """Reload credentials unless another request already did since generation `seen`."""
        async with self._lock:
            if self._generation != seen:
                return
            await self._auth.reauthenticate()
            self._generation += 1
            old, self._session = self._session, await self._new_session()
        if old is not None:
            await old.aclose()

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
        resent = reauthenticated = False
        while True:
            session = await self._current()
            try:
                answer = await session.send(method, path, params, body, content_type, request_timeout)
            except _NOT_CONNECTED as exc:
                if resent:
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                resent = True
                continue
            except _STALE_CONNECTION as exc:
                if resent or method not in IDEMPOTENT:
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                resent = True
                continue
            except _HTTP_ERRORS as exc:
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
            if answer.status == 401 and not reauthenticated:
                reauthenticated = True
                await self._reauthenticate(session.generation)
                continue
            return answer

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Params | None = None, request_timeout: float | None = None
    ) -> AsyncGenerator[StreamResponse]:
        reauthenticated = False
        while True:
            session = await self._current()
            async with contextlib.AsyncExitStack() as stack:
                try:
                    answer = await stack.enter_async_context(
                        session.client.stream(
                            method,
                            path,
                            params=dict(params or {}),
                            timeout=_timeout(request_timeout),
                            extensions=session.extensions,
                        )
                    )
                except httpx.HTTPError as exc:
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                if answer.status_code == 401 and not reauthenticated:
                    reauthenticated = True
                    await answer.aclose()
                    await self._reauthenticate(session.generation)
                    continue
                try:
                    yield _HttpxStream(answer)
                except httpx.HTTPError as exc:  # the stream broke mid-way
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                return

    async def aclose(self) -> None:
        async with self._lock:
            session, self._session = self._session, None
        if session is not None:
            await session.aclose()

"""The kubelet stand-in's asynchronous apiserver client: JSON requests and watches over one TLS pool."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

JSON = dict[str, Any]


class ApiStatusError(RuntimeError):
    """A non-2xx answer."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:300]}")


class KubeClient:
    """Requests as the node's identity (the rig's admin certificate: the rig runs no Node authorizer)."""

    def __init__(self, server: str, ca: str, cert: str, key: str) -> None:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(cert, key)
        self._http = httpx.AsyncClient(base_url=server, verify=ctx, timeout=httpx.Timeout(30.0))

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        body: JSON | None = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
    ) -> JSON | None:
        """One request; None for a 404 when `ok_missing`; ApiStatusError otherwise on non-2xx."""
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        content = json.dumps(body).encode() if body is not None else None
        resp = await self._http.request(method, path, content=content, params=params, headers=headers)
        if resp.status_code == 404 and ok_missing:
            return None
        if resp.status_code >= 300:
            raise ApiStatusError(method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else {}

    async def get(self, path: str, params: dict[str, str] | None = None) -> JSON | None:
        """GET; None when missing."""
        return await self.request("GET", path, params=params, ok_missing=True)

    async def strategic_patch(self, path: str, body: JSON) -> JSON | None:
        """Strategic merge patch (lists such as conditions merge by key, as the kubelet's status patches)."""
        return await self.request(
            "PATCH", path, body, content_type="application/strategic-merge-patch+json", ok_missing=True
        )

    async def watch(self, path: str, params: dict[str, str]) -> AsyncIterator[JSON]:
        """Stream watch events (ERROR events included) until the server ends the watch."""
        query = {**params, "watch": "true", "allowWatchBookmarks": "true"}
        timeout = float(query.get("timeoutSeconds", "300")) + 30
        async with self._http.stream("GET", path, params=query, timeout=timeout) as resp:
            if resp.status_code >= 300:
                raise ApiStatusError("WATCH", path, resp.status_code, (await resp.aread()).decode())
            async for line in resp.aiter_lines():
                if line.strip():
                    yield json.loads(line)

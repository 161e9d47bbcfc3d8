"""A minimal synchronous Kubernetes REST client for the rig itself (readiness checks, nodes, CRDs)."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from e2e.cluster.pki import CertPair

T = TypeVar("T")
JSON = dict[str, Any]


class ApiError(RuntimeError):
    """A non-2xx answer from the apiserver."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:500]}")


class WaitTimeoutError(TimeoutError):
    """A condition did not hold within its deadline."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Call `probe` until it returns something truthy; raise WaitTimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except (httpx.HTTPError, ApiError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            suffix = f" (last error: {last_error})" if last_error else ""
            raise WaitTimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{suffix}")
        time.sleep(interval)


def ssl_context(ca: Path, client: CertPair | None) -> ssl.SSLContext:
    """TLS context trusting the rig's serving CA, presenting `client` when given."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


class Api:
    """JSON requests against the apiserver as one certificate user."""

    def __init__(self, server: str, ca: Path, client: CertPair, timeout: float = 30.0) -> None:
        self.server = server
        self._http = httpx.Client(base_url=server, verify=ssl_context(ca, client), timeout=timeout)

    def close(self) -> None:
        """Release connections."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: JSON | None = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        """Send one request; raise ApiError on a non-2xx answer."""
        content = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        resp = self._http.request(method, path, content=content, params=params, headers=headers)
        if resp.status_code >= 300:
            raise ApiError(method, path, resp.status_code, resp.text)
        return resp

    def get(self, path: str, params: dict[str, str] | None = None) -> JSON | None:
        """GET an object; None when it does not exist."""
        try:
            return self.request("GET", path, params=params).json()
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path: str, body: JSON, *, exist_ok: bool = False) -> JSON | None:
        """POST an object; with exist_ok a 409 returns None."""
        try:
            return self.request("POST", path, body=body).json()
        except ApiError as exc:
            if exist_ok and exc.status == 409:
                return None
            raise

    def delete(self, path: str, *, missing_ok: bool = True) -> None:
        """DELETE an object (background propagation)."""
        try:
            self.request("DELETE", path, body={"propagationPolicy": "Background"})
        except ApiError as exc:
            if not (missing_ok and exc.status == 404):
                raise

    def merge_patch(self, path: str, body: JSON) -> JSON:
        """JSON merge patch."""
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json").json()

    def healthy(self, endpoint: str = "/readyz") -> bool:
        """Whether `endpoint` answers 200 ok."""
        return self._http.get(endpoint).status_code == 200

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 30) -> Iterator[JSON]:
        """Stream watch events from `resource_version` (ERROR events are yielded as they come)."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        with self._http.stream("GET", path, params=params, timeout=timeout_seconds + 10) as resp:
            if resp.status_code >= 300:
                raise ApiError("WATCH", path, resp.status_code, resp.read().decode())
            for line in resp.iter_lines():
                if line.strip():
                    yield json.loads(line)

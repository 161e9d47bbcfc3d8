"""A thin typed async REST client: JSON dicts in, JSON dicts out, typed errors, metrics, spans."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from opentelemetry import trace

from controller.runtime import codec, metrics
from controller.runtime.errors import ApiError, error_from_status
from controller.runtime.objects import JsonObject
from controller.runtime.resource import Resource
from controller.runtime.transport import HttpxTransport, Transport

TRACER_NAME = "pyroclast.controller.runtime.client"


class PatchType(StrEnum):
    """Patch content types understood by the API server."""

    MERGE = "application/merge-patch+json"
    JSON = "application/json-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"


@dataclass(frozen=True, slots=True)
class ObjectList:
    """One LIST answer (all pages joined): its items and the collection's resourceVersion."""

    items: list[JsonObject]
    resource_version: str
    paginated: bool = False


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: ``ADDED``, ``MODIFIED``, ``DELETED``, ``BOOKMARK`` or ``ERROR``."""

    type: str
    object: JsonObject = field(default_factory=dict[str, Any])


def _selector(value: str | Mapping[str, str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(f"{k}={v}" for k, v in value.items())


@functools.lru_cache(maxsize=8)
def _host_port(server: str) -> tuple[str, int]:
    """A base URL's host and port (the scheme's default when it names none): parsed once per server, not on
    every traced request."""
    url = httpx.URL(server)
    return url.host, url.port or (443 if url.scheme == "https" else 80)


class Client:
    """Async Kubernetes REST client over a :class:`~controller.runtime.transport.Transport`.

    Every call counts ``rest_client_requests_total{code,method,host}`` and, inside a trace, opens a
    child span named by the HTTP method (:meth:`_span`). Errors raise
    :class:`~controller.runtime.errors.ApiError` subclasses (``NotFound``, ``Conflict``, ``Gone``...).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = 30.0,
        tracer_provider: trace.TracerProvider | None = None,
    ):
        self.transport = transport
        self.timeout = timeout
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    def trace_with(self, tracer_provider: trace.TracerProvider) -> None:
        """Record request spans with `tracer_provider` rather than the global one."""
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    @classmethod
    async def connect(cls, kubeconfig: str | Path | None = None, context: str | None = None) -> Client:
        """A client with credentials loaded by kr8s (kubeconfig / ``KUBECONFIG``, else in-cluster)."""
        return cls(await HttpxTransport.connect(kubeconfig, context))

    async def aclose(self) -> None:
        """Close the transport's connections."""
        await self.transport.aclose()

    async def _call(
        self,
        verb: str,
        method: str,
        resource: Resource,
        path: str,
        *,
        namespace: str | None = None,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> JsonObject:
        with self._span(verb, method, resource, path, namespace, params) as span:
            code = 0
            try:
                resp = await self.transport.request(
                    method,
                    path,
                    params=params,
                    body=body,
                    content_type=content_type,
                    request_timeout=request_timeout if request_timeout is not None else self.timeout,
                )
                code = resp.status
            except ApiError as err:
                span.set_status(trace.StatusCode.ERROR, str(err))
                span.set_attribute("error.type", type(err).__name__)
                raise
            finally:
                metrics.REST_CLIENT_REQUESTS.labels(
                    code=str(code) if code else "<error>", method=method, host=self.transport.host
                ).inc()
            if span.is_recording():
                span.set_attribute("http.response.status_code", code)
            if code >= 400:
                err = error_from_status(code, resp.body)
                span.set_status(trace.StatusCode.ERROR, err.reason)
                span.set_attribute("error.type", str(code))  # the HTTP conventions' value for a status
                raise err
            return codec.loads(resp.body) if resp.body else {}

    def _span(
        self,
        verb: str,
        method: str,
        resource: Resource,
        path: str,
        namespace: str | None,
        params: Mapping[str, str] | None,
    ) -> contextlib.AbstractContextManager[trace.Span]:
        """A CLIENT span after OpenTelemetry's HTTP client conventions (named by the method), with the
        Kubernetes verb and resource; only inside a trace someone started (a reconcile, a CLI command): a
        request on its own (a Lease renewal, a watch, an Event) never starts a trace."""
        if not trace.get_current_span().get_span_context().is_valid:
            return contextlib.nullcontext(trace.INVALID_SPAN)
        server = self.transport.server
        host, port = _host_port(server)
        query = f"?{urlencode(params)}" if params else ""
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "server.address": host,
            "server.port": port,
            "url.full": f"{server}{path}{query}",
            "pyroclast.k8s.verb": verb,
            "pyroclast.k8s.resource": str(resource),
        }
        if namespace:
            attributes["k8s.namespace.name"] = namespace
        return self._tracer.start_as_current_span(method, kind=trace.SpanKind.CLIENT, attributes=attributes)

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObject:
        """GET one object; raises ``NotFound``."""
        return await self._call("get", "GET", resource, resource.path(namespace, name), namespace=namespace)

    async def list_page(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | Mapping[str, str] | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        request_timeout: float | None = None,
    ) -> JsonObject:
        """One raw LIST page (with ``metadata.continue`` / ``resourceVersion``)."""
        params: dict[str, str] = {}
        if (ls := _selector(label_selector)) is not None:
            params["labelSelector"] = ls
        if field_selector:
            params["fieldSelector"] = field_selector
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if limit:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        return await self._call(
            "list",
            "GET",
            resource,
            resource.path(namespace),
            namespace=namespace,
            params=params,
            request_timeout=request_timeout,
        )

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | Mapping[str, str] | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        page_size: int | None = 500,
        request_timeout: float | None = None,
    ) -> ObjectList:
        """LIST all pages (``limit``/``continue``); the RV is the collection RV of the last page.

        ``resourceVersion`` is only sent with the first page, as the API requires.
        """
        items: list[JsonObject] = []
        cont: str | None = None
        rv = ""
        pages = 0
        while True:
            page = await self.list_page(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=resource_version if cont is None else None,
                limit=page_size,
                continue_=cont,
                request_timeout=request_timeout,
            )
            pages += 1
            items.extend(page.get("items") or [])
            meta: JsonObject = page.get("metadata") or {}
            rv = str(meta.get("resourceVersion", rv))
            cont = meta.get("continue") or None
            if not cont:
                return ObjectList(items, rv, paginated=pages > 1)

    @contextlib.asynccontextmanager
    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
        label_selector: str | Mapping[str, str] | None = None,
        field_selector: str | None = None,
        read_timeout: float | None = None,
    ) -> AsyncGenerator[AsyncIterator[WatchEvent]]:
        """Open a WATCH stream; yields an async iterator of :class:`WatchEvent`.

        An HTTP error at start raises the typed error (e.g. ``Gone``). ``ERROR`` events inside
        the stream are yielded as-is; the reflector decides what they mean.
        """
        params: dict[str, str] = {"watch": "true"}
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(timeout_seconds)
        if (ls := _selector(label_selector)) is not None:
            params["labelSelector"] = ls
        if field_selector:
            params["fieldSelector"] = field_selector
        code = 0
        try:
            async with self.transport.stream(
                "GET", resource.path(namespace), params=params, request_timeout=read_timeout
            ) as stream:
                code = stream.status
                if code >= 400:
                    raise error_from_status(code, await stream.read())

                async def events() -> AsyncIterator[WatchEvent]:
                    async for line in stream.lines():
                        raw: JsonObject = codec.loads(line)
                        yield WatchEvent(str(raw.get("type", "")), raw.get("object") or {})

                yield events()
        finally:
            metrics.REST_CLIENT_REQUESTS.labels(
                code=str(code) if code else "<error>", method="WATCH", host=self.transport.host
            ).inc()

    async def create(
        self,
        resource: Resource,
        obj: JsonObject,
        namespace: str | None = None,
        *,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> JsonObject:
        """POST a new object; raises ``AlreadyExists``. `dry_run`: the apiserver validates and admits it
        (strictly: an unknown field is an error) but stores nothing."""
        ns = namespace or obj.get("metadata", {}).get("namespace")
        params: dict[str, str] = {"fieldManager": field_manager} if field_manager else {}
        if dry_run:
            params.update(dryRun="All", fieldValidation="Strict")
        return await self._call(
            "create",
            "POST",
            resource,
            resource.path(ns),
            namespace=ns,
            params=params or None,
            body=codec.dumps(obj),
            content_type="application/json",
        )

    async def replace(
        self, resource: Resource, obj: JsonObject, *, subresource: str | None = None
    ) -> JsonObject:
        """PUT the whole object (optimistic: ``metadata.resourceVersion`` must be current)."""
        meta = obj["metadata"]
        ns = meta.get("namespace")
        return await self._call(
            "update",
            "PUT",
            resource,
            resource.path(ns, meta["name"], subresource),
            namespace=ns,
            body=codec.dumps(obj),
            content_type="application/json",
        )

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: JsonObject | list[JsonObject],
        namespace: str | None = None,
        *,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> JsonObject:
        """PATCH (merge by default; JSON, strategic, or server-side apply with ``field_manager``)."""
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force is not None:
            params["force"] = "true" if force else "false"
        return await self._call(
            "apply" if patch_type is PatchType.APPLY else "patch",
            "PATCH",
            resource,
            resource.path(namespace, name, subresource),
            namespace=namespace,
            params=params,
            body=codec.dumps(patch),
            content_type=patch_type.value,
        )

    async def patch_status(
        self,
        resource: Resource,
        name: str,
        patch: JsonObject,
        namespace: str | None = None,
        *,
        patch_type: PatchType = PatchType.MERGE,
    ) -> JsonObject:
        """PATCH the ``status`` subresource."""
        return await self.patch(resource, name, patch, namespace, patch_type=patch_type, subresource="status")

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
    ) -> JsonObject:
        """DELETE one object (optionally only if its UID is still ``uid``)."""
        body: JsonObject = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        return await self._call(
            "delete",
            "DELETE",
            resource,
            resource.path(namespace, name),
            namespace=namespace,
            body=codec.dumps(body),
            content_type="application/json",
        )

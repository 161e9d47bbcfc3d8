"""An in-memory fake API server implementing :class:`~controller.runtime.transport.Transport`.

For unit tests of the runtime and of reconcilers: it keeps objects per resource, a global
resourceVersion, an event history that can be compacted (so old RVs answer 410), paged lists,
watches with bookmarks, and fault injection (error answers, dropped or silently stalled
watches). It is not a full apiserver: selectors are equality-only and there is no admission.
"""

from __future__ import annotations

import contextlib
import copy
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from controller.runtime import objects
from controller.runtime.cache import Cache, object_key
from controller.runtime.errors import TransportError
from controller.runtime.objects import JsonObject
from controller.runtime.transport import Response

_Collection = tuple[str, str]  # (api prefix, plural)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result: JsonObject = dict(target) if isinstance(target, dict) else {}  # pyright: ignore[reportUnknownArgumentType]
    for key, value in patch.items():  # pyright: ignore[reportUnknownVariableType]
        if value is None:
            result.pop(key, None)  # pyright: ignore[reportUnknownArgumentType]
        else:
            result[key] = merge_patch(result.get(key), value)  # pyright: ignore[reportUnknownArgumentType]
    return result


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        }
    ).encode()


@dataclass
class _Route:
    collection: _Collection
    namespace: str | None
    name: str | None
    subresource: str | None


def _parse(path: str) -> _Route:
    segs = [s for s in path.split("/") if s]
    if segs[0] == "api":
        prefix, rest = "/".join(segs[:2]), segs[2:]
    else:
        prefix, rest = "/".join(segs[:3]), segs[3:]
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    return _Route(
        (prefix, rest[0]), namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
    )


@dataclass
class _Watcher:
    collection: _Collection
    namespace: str | None
    labels: dict[str, str]
    send: MemoryObjectSendStream[bytes | BaseException]
    stalled: bool = False


@dataclass
class _Fault:
    code: int
    count: int
    methods: frozenset[str]


class _FakeStream:
    def __init__(
        self,
        status: int,
        body: bytes,
        receive: MemoryObjectReceiveStream[bytes | BaseException] | None,
        request_timeout: float | None = None,
    ):
        self._status = status
        self._body = body
        self._receive = receive
        self._timeout = request_timeout

    @property
    def status(self) -> int:
        return self._status

    async def read(self) -> bytes:
        return self._body

    async def lines(self) -> AsyncIterator[bytes]:
        if self._receive is None:
            return
        deadline = anyio.current_time() + (self._timeout or float("inf"))
        while True:
            item: bytes | BaseException | None = None
            with anyio.move_on_after(deadline - anyio.current_time()):
                try:
                    item = await self._receive.receive()
                except anyio.EndOfStream:
                    return
            if item is None:
                return  # server-side timeoutSeconds elapsed: a normal close
            if isinstance(item, BaseException):
                raise item
            yield item


@dataclass
class FakeApiServer:
    """The fake; use as the ``transport`` of a :class:`~controller.runtime.client.Client`."""

    host: str = "fake-apiserver"
    server: str = "http://fake-apiserver"
    rv: int = 1
    compacted_rv: int = 0
    objects: dict[_Collection, dict[tuple[str, str], JsonObject]] = field(
        default_factory=dict[_Collection, dict[tuple[str, str], JsonObject]]
    )
    history: list[tuple[int, _Collection, str, JsonObject]] = field(
        default_factory=list[tuple[int, _Collection, str, JsonObject]]
    )
    requests: list[tuple[str, str, dict[str, str]]] = field(
        default_factory=list[tuple[str, str, dict[str, str]]]
    )
    watchers: list[_Watcher] = field(default_factory=list[_Watcher])
    faults: list[_Fault] = field(default_factory=list[_Fault])
    unreachable: bool = False
    watch_list_limit_ignored_for_rv0: bool = True

    # --- fault injection -------------------------------------------------------------------

    def fail_next(
        self, code: int, count: int = 1, methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
    ) -> None:
        """Answer the next ``count`` requests of ``methods`` with HTTP ``code``."""
        self.faults.append(_Fault(code, count, frozenset(methods)))

    def compact(self) -> int:
        """Forget history up to now: watches and lists at older RVs get 410."""
        self.compacted_rv = self.rv
        self.history.clear()
        return self.rv

    def drop_watches(self) -> None:
        """Break every open watch as a connection reset would."""
        for watcher in self.watchers:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                watcher.send.send_nowait(TransportError("connection reset by fake"))
        self.watchers.clear()

    def stall_watches(self) -> None:
        """Keep every open watch connected but silent (a half-open TCP stream)."""
        for watcher in self.watchers:
            watcher.stalled = True

    def send_bookmarks(self) -> None:
        """Send a BOOKMARK at the current RV on every open watch."""
        for watcher in list(self.watchers):
            self._send(
                watcher, {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(self.rv)}}}
            )

    def expire_watches(self) -> None:
        """Send an in-stream ERROR 410 on every open watch (then close them)."""
        for watcher in list(self.watchers):
            self._send(
                watcher,
                {"type": "ERROR", "object": json.loads(_status(410, "Expired", "too old resource version"))},
            )
            watcher.send.close()
        self.watchers.clear()

    # --- direct manipulation (no HTTP) -----------------------------------------------------

    def sync_cache(self, collection: tuple[str, str], cache: Cache) -> None:
        """Bring `cache` level with `collection` ((api prefix, plural)) as an informer would, by hand:
        gone objects removed, new or changed resourceVersions stored (as copies), the rest left alone."""
        store = self.objects.get(collection, {})
        live = {f"{ns}/{name}" for ns, name in store}
        for key in [k for k in cache if k not in live]:
            cache.remove(key)
        for obj in store.values():
            if cache.version(object_key(obj)) != objects.resource_version(obj):
                cache.upsert(cache.prepare(copy.deepcopy(obj)))

    def put_object(self, api_prefix: str, plural: str, obj: JsonObject) -> JsonObject:
        """Create or overwrite an object as if a client wrote it; emits a watch event."""
        meta = obj.setdefault("metadata", {})
        store = self.objects.setdefault((api_prefix, plural), {})
        key = (meta.get("namespace", ""), meta["name"])
        existed = key in store
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        store[key] = obj
        self._emit((api_prefix, plural), "MODIFIED" if existed else "ADDED", obj)
        return obj

    def delete_object(self, api_prefix: str, plural: str, namespace: str, name: str) -> None:
        """Delete an object as if a client did; emits a watch event."""
        obj = self.objects.get((api_prefix, plural), {}).pop((namespace, name))
        self.rv += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit((api_prefix, plural), "DELETED", obj)

    # --- internals -------------------------------------------------------------------------

    def _emit(self, collection: _Collection, kind: str, obj: JsonObject) -> None:
        self.history.append((self.rv, collection, kind, json.loads(json.dumps(obj))))
        for watcher in list(self.watchers):
            if self._matches(watcher, collection, obj):
                self._send(watcher, {"type": kind, "object": obj})

    @staticmethod
    def _matches(watcher: _Watcher, collection: _Collection, obj: JsonObject) -> bool:
        meta = obj.get("metadata", {})
        if watcher.collection != collection:
            return False
        if watcher.namespace and meta.get("namespace") != watcher.namespace:
            return False
        labels = objects.labels(obj)
        return all(labels.get(k) == v for k, v in watcher.labels.items())

    def _send(self, watcher: _Watcher, event: JsonObject) -> None:
        if watcher.stalled:
            return
        try:
            watcher.send.send_nowait(json.dumps(event).encode())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            with contextlib.suppress(ValueError):
                self.watchers.remove(watcher)

    def _fault(self, method: str) -> int | None:
        for fault in self.faults:
            if method in fault.methods and fault.count > 0:
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault.code
        return None

    @staticmethod
    def _labels(params: Mapping[str, str]) -> dict[str, str]:
        sel = params.get("labelSelector", "")
        return dict(part.split("=", 1) for part in sel.split(",") if "=" in part)

    def _list(self, route: _Route, params: Mapping[str, str]) -> Response:
        rv = params.get("resourceVersion")
        if rv not in (None, "", "0") and int(rv) < self.compacted_rv and "continue" not in params:
            return Response(
                410, _status(410, "Expired", f"too old resource version: {rv} ({self.compacted_rv})")
            )
        labels = self._labels(params)
        store = self.objects.get(route.collection, {})
        items = [
            store[key]
            for key in sorted(store)
            if (route.namespace is None or key[0] == route.namespace)
            and all(objects.labels(store[key]).get(k) == v for k, v in labels.items())
        ]
        limit = int(params.get("limit", "0") or 0)
        if rv == "0" and self.watch_list_limit_ignored_for_rv0:
            limit = 0  # the watch cache ignores limit for RV=0
        start = 0
        list_rv = str(self.rv)
        if "continue" in params:
            token = json.loads(params["continue"])
            start, list_rv = token["start"], token["rv"]
        meta: JsonObject = {"resourceVersion": list_rv}
        if limit and start + limit < len(items):
            meta["continue"] = json.dumps({"start": start + limit, "rv": list_rv})
            items = items[start : start + limit]
        else:
            items = items[start:]
        return Response(200, json.dumps({"kind": "List", "metadata": meta, "items": items}).encode())

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> Response:
        """Serve one request."""
        await anyio.lowlevel.checkpoint()
        params = dict(params or {})
        self.requests.append((method, path, params))
        if self.unreachable:
            raise TransportError("connection refused (fake)")
        code = self._fault(method)
        if code is not None:
            return Response(code, _status(code, "Injected", "injected fault"))
        route = _parse(path)
        store = self.objects.setdefault(route.collection, {})
        if method == "GET" and route.name is None:
            return self._list(route, params)
        key = (route.namespace or "", route.name or "")
        if method == "GET":
            obj = store.get(key)
            if obj is None:
                return Response(
                    404, _status(404, "NotFound", f"{route.collection[1]} {route.name!r} not found")
                )
            return Response(200, json.dumps(obj).encode())
        if method == "POST":
            obj = json.loads(body or b"{}")
            meta = obj.setdefault("metadata", {})
            if route.namespace:
                meta["namespace"] = route.namespace
            if "generateName" in meta and "name" not in meta:
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if (meta.get("namespace", ""), meta["name"]) in store:
                return Response(409, _status(409, "AlreadyExists", f"{meta['name']} already exists"))
            meta.pop("resourceVersion", None)
            if params.get("dryRun") == "All":  # admitted, stored nowhere
                return Response(201, json.dumps(obj).encode())
            return Response(201, json.dumps(self.put_object(*route.collection, obj)).encode())
        current = store.get(key)
        if current is None:
            return Response(404, _status(404, "NotFound", f"{route.name!r} not found"))
        if method == "DELETE":
            self.delete_object(*route.collection, *key)
            return Response(200, json.dumps(current).encode())
        incoming = json.loads(body or b"{}")
        if method == "PATCH":
            if content_type != "application/merge-patch+json":
                return Response(415, _status(415, "UnsupportedMediaType", "fake supports merge patch only"))
            want_rv = objects.metadata(incoming).get("resourceVersion")
            new = merge_patch(current, incoming)
        else:
            want_rv = objects.metadata(incoming).get("resourceVersion")
            new = incoming
        if want_rv is not None and want_rv != current["metadata"]["resourceVersion"]:
            return Response(409, _status(409, "Conflict", "the object has been modified"))
        if route.subresource == "status":
            new = {**current, "status": new.get("status")}
        elif "status" in current:
            new["status"] = current["status"]
        new["metadata"]["uid"] = current["metadata"]["uid"]
        generation = current["metadata"].get("generation", 1)
        if new.get("spec") != current.get("spec"):
            generation += 1
        new["metadata"]["generation"] = generation
        return Response(200, json.dumps(self.put_object(*route.collection, new)).encode())

    async def aclose(self) -> None:
        """Nothing to release: the fake holds no connections."""

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
    ) -> AsyncGenerator[_FakeStream]:
        """Serve a WATCH."""
        await anyio.lowlevel.checkpoint()
        params = dict(params or {})
        self.requests.append((method, path, params))
        if self.unreachable:
            raise TransportError("connection refused (fake)")
        code = self._fault("WATCH")
        if code is not None:
            yield _FakeStream(code, _status(code, "Injected", "injected fault"), None)
            return
        route = _parse(path)
        send, receive = anyio.create_memory_object_stream[bytes | BaseException](max_buffer_size=float("inf"))
        watcher = _Watcher(route.collection, route.namespace, self._labels(params), send)
        rv = int(params.get("resourceVersion") or self.rv)
        if rv < self.compacted_rv:
            send.send_nowait(
                json.dumps(
                    {
                        "type": "ERROR",
                        "object": json.loads(_status(410, "Expired", f"too old resource version: {rv}")),
                    }
                ).encode()
            )
            send.close()
        else:
            for ev_rv, collection, kind, obj in self.history:
                if ev_rv > rv and self._matches(watcher, collection, obj):
                    send.send_nowait(json.dumps({"type": kind, "object": obj}).encode())
            self.watchers.append(watcher)
        server_timeout = float(params.get("timeoutSeconds", "0") or 0) or None
        try:
            yield _FakeStream(200, b"", receive, server_timeout)
        finally:
            with contextlib.suppress(ValueError):
                self.watchers.remove(watcher)
            send.close()
            receive.close()

"""An indexed object store: by ``namespace/name``, by namespace, and by custom indexes.

Objects are plain JSON dicts. A *transform* runs at ingest (by default it drops
``metadata.managedFields``) so large objects are stored lean. Reads return deep copies unless
``copy=False`` is passed (then the caller promises not to mutate; as controller-runtime's
``UnsafeDisableDeepCopy``), so no caller can mutate an object into the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from controller.runtime import codec, objects
from controller.runtime.objects import JsonObject

IndexFunc = Callable[[JsonObject], Iterable[str]]
Transform = Callable[[JsonObject], JsonObject]

NAMESPACE_INDEX = "namespace"


def object_key(obj: JsonObject) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects (client-go's MetaNamespaceKeyFunc)."""
    ns = objects.namespace(obj)
    return f"{ns}/{objects.name(obj)}" if ns else objects.name(obj)


def namespace_index(obj: JsonObject) -> list[str]:
    """The built-in index: the object's namespace (empty list when cluster-scoped)."""
    ns = objects.namespace(obj)
    return [ns] if ns else []


def owner_uid_index(obj: JsonObject) -> list[str]:
    """Index by the UIDs of the object's owner references."""
    return [str(ref["uid"]) for ref in objects.owner_references(obj) if "uid" in ref]


def label_index(label: str) -> IndexFunc:
    """Index by the value of one label."""

    def index(obj: JsonObject) -> list[str]:
        labels = objects.labels(obj)
        return [labels[label]] if label in labels else []

    return index


def strip_managed_fields(obj: JsonObject) -> JsonObject:
    """Default transform: drop ``metadata.managedFields`` (often the bulk of an object)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        del meta["managedFields"]
    return obj


_SCALARS = frozenset({str, int, float, bool, type(None)})


def deep_copy(value: Any) -> Any:
    """Copy a JSON tree (dicts, lists, scalars) — several times faster than ``copy.deepcopy``.

    Scalar leaves are shared without a call: they are immutable, and most of a tree's nodes are leaves."""
    if type(value) is dict:
        tree = cast("dict[str, Any]", value)
        return {k: v if type(v) in _SCALARS else deep_copy(v) for k, v in tree.items()}
    if type(value) is list:
        items = cast("list[Any]", value)
        return [v if type(v) in _SCALARS else deep_copy(v) for v in items]
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [deep_copy(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


class Cache:
    """Thread-unsafe (single event loop) indexed store of JSON objects.

    The informer is the only writer. Index functions may return several values per object;
    :meth:`add_index` can be called after objects are stored.

    With ``compact=True`` each object is kept as compact JSON bytes (about a quarter of the
    memory of the decoded dicts) and decoded on every read; a read then always returns a fresh
    object, so ``copy=False`` saves nothing. Suits large caches that are read rarely.
    """

    def __init__(self, transform: Transform | None = strip_managed_fields, *, compact: bool = False):
        self.transform = transform
        self.compact = compact
        self._items: dict[str, JsonObject | bytes] = {}
        self._versions: dict[str, str] = {}  # compact mode only: resourceVersion by key
        self._index_funcs: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index}
        # Keys per index value as dict keys (an ordered set): a dict of 8 keys is 272 bytes, a set 728.
        self._indices: dict[str, dict[str, dict[str, None]]] = {NAMESPACE_INDEX: {}}
        self.resource_version = ""

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        """Keys, from a snapshot (the cache may change while iterating)."""
        return iter(list(self._items))

    @staticmethod
    def _load(stored: JsonObject | bytes) -> JsonObject:
        return codec.loads(stored) if isinstance(stored, bytes) else stored

    def _read(self, stored: JsonObject | bytes, copy: bool) -> JsonObject:
        if isinstance(stored, bytes):
            return codec.loads(stored)
        return deep_copy(stored) if copy else stored

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Register an index and build it over the stored objects."""
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} already exists")
        self._index_funcs[name] = func
        index: dict[str, dict[str, None]] = {}
        for key, stored in self._items.items():
            for value in func(self._load(stored)):
                index.setdefault(value, {})[key] = None
        self._indices[name] = index

    def _unindex(self, key: str, obj: JsonObject) -> None:
        for name, func in self._index_funcs.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.pop(key, None)
                    if not keys:
                        del index[value]

    def _index(self, key: str, obj: JsonObject) -> None:
        for name, func in self._index_funcs.items():
            index = self._indices[name]
            for value in func(obj):
                index.setdefault(value, {})[key] = None

    def prepare(self, obj: JsonObject) -> JsonObject:
        """Apply the transform (the informer calls this once per incoming object)."""
        return self.transform(obj) if self.transform else obj

    def version(self, key: str) -> str | None:
        """The stored object's ``resourceVersion`` (None when absent), without decoding it."""
        if self.compact:
            return self._versions.get(key)
        stored = self._items.get(key)
        return None if stored is None else objects.resource_version(self._load(stored))

    def upsert(self, obj: JsonObject) -> JsonObject | None:
        """Store an (already prepared) object; return the previous version, if any."""
        key = object_key(obj)
        stored = self._items.get(key)
        old = None if stored is None else self._load(stored)
        if old is not None:
            self._unindex(key, old)
        if self.compact:
            self._items[key] = codec.dumps(obj)
            self._versions[key] = objects.resource_version(obj)
        else:
            self._items[key] = obj
        self._index(key, obj)
        return old

    def remove(self, key: str) -> JsonObject | None:
        """Remove by key; return what was stored."""
        stored = self._items.pop(key, None)
        self._versions.pop(key, None)
        if stored is None:
            return None
        old = self._load(stored)
        self._unindex(key, old)
        return old

    def get(self, key: str, *, copy: bool = True) -> JsonObject | None:
        """The object stored under ``namespace/name`` (a deep copy unless ``copy=False``)."""
        stored = self._items.get(key)
        return None if stored is None else self._read(stored, copy)

    def keys(self) -> list[str]:
        """All stored keys."""
        return list(self._items)

    def list(
        self,
        namespace: str | None = None,
        *,
        label_selector: dict[str, str] | None = None,
        copy: bool = True,
    ) -> list[JsonObject]:
        """Objects, optionally of one namespace and matching equality label selectors."""
        if namespace is None:
            stored = list(self._items.values())
        else:
            keys = self._indices[NAMESPACE_INDEX].get(namespace, {})
            stored = [self._items[k] for k in sorted(keys)]
        objs = [self._load(o) for o in stored]
        if label_selector:
            objs = [o for o in objs if _labels_match(o, label_selector)]
        return [deep_copy(o) for o in objs] if copy and not self.compact else objs

    def by_index(self, index: str, value: str, *, copy: bool = True) -> list[JsonObject]:
        """Objects whose index function returned ``value``."""
        keys = self._indices[index].get(value, {})
        return [self._read(self._items[k], copy) for k in sorted(keys)]

    def index_keys(self, index: str, value: str) -> list[str]:
        """Keys whose index function returned ``value``."""
        return sorted(self._indices[index].get(value, {}))

    def index_values(self, index: str) -> list[str]:
        """All values of one index."""
        return list(self._indices[index])


def _labels_match(obj: JsonObject, selector: dict[str, str]) -> bool:
    labels = objects.labels(obj)
    return all(labels.get(k) == v for k, v in selector.items())

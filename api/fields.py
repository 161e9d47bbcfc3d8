"""Field types shared across the API: Kubernetes names, paths and pass-through objects."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, Final, TypeVar

from pydantic import Field, StringConstraints, WithJsonSchema

DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENV_NAME_PATTERN: Final = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
ABSOLUTE_PATH_PATTERN: Final = r"^/[^:]*$"

DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
"""A DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters."""

DnsSubdomain = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
"""A DNS-1123 subdomain: dot-separated labels, at most 253 characters."""

AbsolutePath = Annotated[str, StringConstraints(pattern=ABSOLUTE_PATH_PATTERN, max_length=1024)]
"""An absolute path inside the container, without ':'."""

ShortString = Annotated[str, StringConstraints(max_length=4096)]
"""A string of at most 4096 characters."""

StringMap = Annotated[dict[str, Annotated[str, StringConstraints(max_length=4096)]], Field(max_length=64)]
"""A string-to-string map of at most 64 entries (labels, annotations, node selectors)."""

_UNSTRUCTURED: Final[dict[str, Any]] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

Unstructured = Annotated[dict[str, Any], WithJsonSchema(_UNSTRUCTURED)]
"""A Kubernetes core object passed through as written; the pod's own validation checks it."""

SingleKeyUnstructured = Annotated[
    dict[str, Any],
    Field(min_length=1, max_length=1),
    WithJsonSchema({**_UNSTRUCTURED, "minProperties": 1, "maxProperties": 1}),
]
"""A core one-of object (a volume source): exactly one key, passed through as written."""

T = TypeVar("T")


def duplicates(items: Iterable[T], key: Callable[[T], str]) -> list[str]:
    """Keys that occur more than once in `items`, in first-seen order."""
    seen: set[str] = set()
    repeated: list[str] = []
    for item in items:
        k = key(item)
        if k in seen and k not in repeated:
            repeated.append(k)
        seen.add(k)
    return repeated


def map_list(*keys: str) -> dict[str, Any]:
    """Schema markers for a list whose items are unique by `keys` (server-side apply merges by them)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}

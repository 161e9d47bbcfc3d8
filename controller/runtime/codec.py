"""JSON bodies to and from the apiserver: orjson, several times faster than the standard library's codec.

Decoding watch events and response bodies and encoding request bodies and compact cache entries are a large
share of the operator's CPU under a burst of jobs; both directions go through here. Output is compact UTF-8
(what the apiserver sends and accepts); input may be bytes or str.
"""

from __future__ import annotations

from typing import Any

import orjson


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse one JSON document."""
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    """Serialise `obj` as compact JSON (UTF-8 bytes)."""
    return orjson.dumps(obj)

"""An asyncio event loop on a virtual clock, for unit tests that are about durations.

Whenever nothing is ready to run, the clock jumps to the next timer instead of sleeping, so a test can check
"finishes within 30 s" or "takes over after the lease expires" exactly, without waiting and without flaking on
a loaded machine. ``anyio.sleep``, ``move_on_after``, ``fail_after`` and ``anyio.current_time`` all follow it
(they use the loop's clock). Only for code that does no real I/O (the in-memory API server): a real socket's
answer does not arrive while the clock jumps.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.BaseSelector):
    """Polls the real selector without blocking; when nothing is ready, advances the clock by the timeout."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only real I/O (a signal, a thread) can wake the loop
            return self._inner.select(None)
        self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._inner.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose :meth:`time` starts at 0 and only moves when the loop would sleep."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (the loop calls this when it would otherwise block)."""
        self._now += seconds


def run_virtual(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run ``fn(*args)`` to completion on a fresh :class:`VirtualTimeLoop`."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(fn(*args))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

"""What a reconciler receives and returns: :class:`Request`, :class:`Result`, :class:`TerminalError`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Request:
    """The object to reconcile, by namespace and name only (reconciles are level-based)."""

    namespace: str
    name: str

    @property
    def key(self) -> str:
        """``namespace/name``, or ``name`` for cluster-scoped objects (the cache key)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class Result:
    """What to do after a successful reconcile.

    ``requeue_after > 0`` forgets the failure history and re-queues after that many seconds.
    ``requeue=True`` re-queues with rate limiting (deprecated upstream; prefer ``requeue_after``).
    The default forgets the item: nothing more until the next event.
    """

    requeue: bool = False
    requeue_after: float = 0.0


class TerminalError(Exception):
    """Raise (or wrap with ``raise TerminalError(...) from err``) to fail without retrying."""

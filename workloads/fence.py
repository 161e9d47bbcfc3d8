"""Fencing of the checkpoint root: only the newest worker group may train on it and commit (no torch needed).

An elastic job's rendezvous can, under heavy load, form a new round while the previous round's workers are
still alive (keep-alive judged them dead): two groups would then train the same job and commit into the same
root. Global rank 0 of every group claims the ``fence`` file when the group starts, before it loads the
checkpoint: it writes the previous epoch + 1 and a fresh owner token. A group whose token is no longer in the
file has been superseded; it must stop without committing (see :mod:`workloads.train`).

Whoever replaced the file last owns it, so two groups claiming at once end with exactly one owner; the
epoch only orders claims for people reading the file. A missing or damaged file proves nobody's ownership:
the group that sees it stops, and its restart claims the file afresh.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from workloads.commit import atomic_write

log = logging.getLogger(__name__)

FENCE = "fence"


@dataclass(frozen=True)
class Claim:
    """The fence file's content: the claim's number and the claiming group's token."""

    epoch: int
    owner: str

    def to_json(self) -> str:
        return json.dumps({"epoch": self.epoch, "owner": self.owner}, sort_keys=True)


def read(root: Path) -> Claim | None:
    """The claim in ``root``'s fence file; None when there is none or it cannot be read as one."""
    try:
        raw: object = json.loads((root / FENCE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("fence file %s unreadable: %s", root / FENCE, err)
        return None
    if not isinstance(raw, dict):
        return None
    fields = cast("dict[str, object]", raw)
    epoch, owner = fields.get("epoch"), fields.get("owner")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return None
    if not isinstance(owner, str) or not owner:
        return None
    return Claim(epoch, owner)


def claim(root: Path, owner: str | None = None) -> Claim:
    """Take ``root`` for a new group: the previous epoch (0 without a readable claim) + 1, a fresh token."""
    root.mkdir(parents=True, exist_ok=True)
    before = read(root)
    mine = Claim((before.epoch if before else 0) + 1, owner or uuid.uuid4().hex)
    atomic_write(root / FENCE, mine.to_json(), unique=True)
    return mine


class Fence:
    """One group's claim on a checkpoint root, checked against the file on every :meth:`holds`."""

    def __init__(self, root: Path, mine: Claim) -> None:
        self.root = root
        self.mine = mine
        self.seen: Claim | None = mine
        """The claim found by the newest check (None: no readable claim)."""
        self.lost = False

    @classmethod
    def take(cls, root: Path) -> Fence:
        return cls(root, claim(root))

    def holds(self) -> bool:
        """Whether the file still names this group (one small read). Once lost, the claim stays lost: a
        group that was refused a commit must stop, whatever the file says later."""
        if not self.lost:
            self.seen = read(self.root)
            self.lost = self.seen != self.mine
        return not self.lost

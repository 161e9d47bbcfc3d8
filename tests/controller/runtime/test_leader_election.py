"""Lease leader election on the fake API server (short timings; the defaults are 15/10/2 s)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.leader import JITTER_FACTOR, LeaderElectionLost, LeaderElector
from controller.runtime.resource import LEASES
from controller.runtime.transport import Response
from tests.virtual_time import run_virtual


async def eventually(pred: Callable[[], bool], within: float = 60.0) -> None:
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.005)


def test_defaults_and_validation() -> None:
    elector = LeaderElector(Client(FakeApiServer()), name="x", namespace="ns")
    assert (elector.lease_duration, elector.renew_deadline, elector.retry_period) == (15.0, 10.0, 2.0)
    assert elector.api_timeout == 5.0
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElector(Client(FakeApiServer()), name="x", namespace="ns", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match=r"1\.2"):
        LeaderElector(Client(FakeApiServer()), name="x", namespace="ns", renew_deadline=2.3, retry_period=2)


class _LeaseLog(FakeApiServer):
    """The in-memory API server, noting when (on the loop's clock) each Lease write succeeded and by whom."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[float, str]] = []

    async def request(self, method: str, path: str, **kw: Any) -> Response:
        resp = await super().request(method, path, **kw)
        if "/leases" in path and method in ("POST", "PUT") and resp.status < 300:
            holder = json.loads(resp.body)["spec"]["holderIdentity"]
            self.writes.append((anyio.current_time(), holder))
        return resp


def _elector(fake: FakeApiServer, identity: str, **kw: Any) -> LeaderElector:
    """An elector with client-go's default timings (15 s lease, 10 s renew deadline, 2 s retry)."""
    return LeaderElector(Client(fake), name="op", namespace="ns", identity=identity, **kw)


def test_one_leader_then_failover_after_lease_expiry() -> None:
    """On a virtual clock with the default timings: the standby takes over once the dead leader's lease
    expired on its own clock (15 s after the last renewal it saw), never before, and not a period later."""
    fake = _LeaseLog()
    electors = [_elector(fake, f"id-{i}") for i in range(3)]
    leading: list[tuple[str, float]] = []
    overlap: list[set[str]] = []
    active: set[str] = set()
    killed: list[float] = []

    def lead_as(identity: str) -> Callable[[], Awaitable[None]]:
        async def lead() -> None:
            if active:
                overlap.append(set(active))
            active.add(identity)
            leading.append((identity, anyio.current_time()))
            try:
                await anyio.sleep_forever()
            finally:
                active.discard(identity)

        return lead

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            scopes: dict[str, anyio.CancelScope] = {}
            for e in electors:

                async def campaign(e: LeaderElector = e) -> None:
                    with anyio.CancelScope() as scope:
                        scopes[e.identity] = scope
                        await e.run(lead_as(e.identity))

                tg.start_soon(campaign)
            await eventually(lambda: len(leading) == 1)
            await anyio.sleep(60.0)  # four lease durations: it renews, nobody else leads
            assert len(leading) == 1, "exactly one leader while it renews"
            killed.append(anyio.current_time())
            scopes[leading[0][0]].cancel()  # abrupt: no release
            await eventually(lambda: len(leading) == 2, within=120.0)
            tg.cancel_scope.cancel()

    run_virtual(main)
    (first, _), (second, took_over) = leading
    assert second != first
    assert overlap == []
    last_renewal = max(t for t, holder in fake.writes if holder == first and t <= killed[0])
    # Not before the lease expired on the standby's clock (it saw the renewal no earlier than it was made),
    # and at most one polling period after it (it may see the renewal that late: 2 s x (1 + jitter 1.2), as
    # client-go's JitterUntil) plus the 50 ms wake-up margin.
    poll = 2.0 * (1.0 + JITTER_FACTOR)
    assert last_renewal + 15.0 <= took_over <= last_renewal + 15.0 + poll + 0.05 + 1e-6
    lease = fake.objects[("apis/coordination.k8s.io/v1", "leases")][("ns", "op")]
    assert lease["spec"]["leaseTransitions"] == 1


def test_leader_that_cannot_renew_stops_leading() -> None:
    fake = _LeaseLog()
    elector = _elector(fake, "me")
    stopped: list[float] = []
    raised: list[BaseException] = []

    async def lead() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stopped.append(anyio.current_time())

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                try:
                    await elector.run(lead)
                except LeaderElectionLost as err:
                    raised.append(err)

            tg.start_soon(run)
            await eventually(lambda: elector.is_leader)
            await anyio.sleep(7.0)  # a few renewals
            fake.unreachable = True
            await eventually(lambda: bool(raised), within=120.0)

    run_virtual(main)
    assert stopped, "lead() was cancelled"
    last_renewal = fake.writes[-1][0]
    # Stops within the renew deadline (10 s) after the retry period that follows its last renewal: before
    # the lease (15 s) could expire on any other candidate's clock.
    assert stopped[0] <= last_renewal + 2.0 + 10.0 + 1e-6
    assert stopped[0] < last_renewal + 15.0
    assert elector.is_leader is False


def test_release_on_cancel_lets_the_next_candidate_in_at_once() -> None:
    fake = _LeaseLog()
    a = _elector(fake, "a", release_on_cancel=True)
    b = _elector(fake, "b")
    got: list[float] = []

    async def main() -> None:
        async def lead_briefly() -> None:
            await anyio.sleep(3.0)

        await a.run(lead_briefly)
        lease = await Client(fake).get(LEASES, "op", "ns")
        assert lease["spec"]["holderIdentity"] == ""
        start = anyio.current_time()

        async def lead_b() -> None:
            got.append(anyio.current_time() - start)

        await b.run(lead_b)

    run_virtual(main)
    assert got == [0.0]  # no wait for the 15 s lease: the released record is free at once

"""Lease leader election on the fake API server (short timings; the defaults are 15/10/2 s)."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import pytest

from controller.client import Client
from controller.leader import LeaderElectionLost, LeaderElector
from controller.resource import LEASES
from controller.testing import FakeApiServer

LEASE, RENEW, RETRY = 0.6, 0.4, 0.1


async def eventually(pred: Callable[[], bool], within: float = 5.0) -> None:
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


async def test_one_leader_then_failover_after_lease_expiry() -> None:
    fake = FakeApiServer()
    electors = [
        LeaderElector(
            Client(fake),
            name="op",
            namespace="ns",
            identity=f"id-{i}",
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
        )
        for i in range(3)
    ]
    leading: list[str] = []
    overlap: list[set[str]] = []
    active: set[str] = set()
    killed_at: list[float] = []
    took_over_at: list[float] = []

    def lead_as(identity: str) -> Callable[[], object]:
        async def lead() -> None:
            if active:
                overlap.append(set(active))
            active.add(identity)
            leading.append(identity)
            if killed_at:
                took_over_at.append(time.monotonic())
            try:
                await anyio.sleep_forever()
            finally:
                active.discard(identity)

        return lead

    first = ""
    async with anyio.create_task_group() as tg:
        scopes: dict[str, anyio.CancelScope] = {}
        for e in electors:

            async def campaign(e: LeaderElector = e) -> None:
                with anyio.CancelScope() as scope:
                    scopes[e.identity] = scope
                    await e.run(lead_as(e.identity))  # type: ignore[arg-type]

            tg.start_soon(campaign)
        await eventually(lambda: len(leading) == 1)
        await anyio.sleep(1.0)
        assert len(leading) == 1, "exactly one leader while it renews"
        first = leading[0]
        assert first
        lease = fake.objects[("apis/coordination.k8s.io/v1", "leases")][("ns", "op")]
        assert lease["spec"]["holderIdentity"] == first
        killed_at.append(time.monotonic())
        scopes[first].cancel()  # abrupt: no release
        await eventually(lambda: len(leading) == 2)
        tg.cancel_scope.cancel()
    assert leading[1] != first
    assert overlap == []
    elapsed = took_over_at[0] - killed_at[0]
    assert 0.4 < elapsed < 3.0, f"takeover after ~lease duration, took {elapsed:.2f}s"
    transitions = fake.objects[("apis/coordination.k8s.io/v1", "leases")][("ns", "op")]["spec"][
        "leaseTransitions"
    ]
    assert transitions == 1


async def test_leader_that_cannot_renew_stops_leading() -> None:
    fake = FakeApiServer()
    elector = LeaderElector(
        Client(fake),
        name="op",
        namespace="ns",
        identity="me",
        lease_duration=LEASE,
        renew_deadline=RENEW,
        retry_period=RETRY,
    )
    started = anyio.Event()
    stopped_leading: list[float] = []

    async def lead() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped_leading.append(time.monotonic())

    raised: list[BaseException] = []
    cut: list[float] = []
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            try:
                await elector.run(lead)
            except LeaderElectionLost as err:
                raised.append(err)

        tg.start_soon(run)
        await started.wait()
        cut.append(time.monotonic())
        fake.unreachable = True
        await eventually(lambda: bool(raised), within=3)
    assert stopped_leading, "lead() was cancelled"
    assert stopped_leading[0] - cut[0] < LEASE, "stops before another could acquire"
    assert elector.is_leader is False


async def test_release_on_cancel_lets_the_next_candidate_in_at_once() -> None:
    fake = FakeApiServer()
    a = LeaderElector(
        Client(fake),
        name="op",
        namespace="ns",
        identity="a",
        release_on_cancel=True,
        lease_duration=LEASE,
        renew_deadline=RENEW,
        retry_period=RETRY,
    )
    async with anyio.create_task_group() as tg:

        async def lead_briefly() -> None:
            await anyio.sleep(0.2)

        await a.run(lead_briefly)
        lease = await Client(fake).get(LEASES, "op", "ns")
        assert lease["spec"]["holderIdentity"] == ""
        b = LeaderElector(
            Client(fake),
            name="op",
            namespace="ns",
            identity="b",
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
        )
        got = anyio.Event()

        async def lead_b() -> None:
            got.set()

        start = time.monotonic()
        tg.start_soon(b.run, lead_b)
        with anyio.fail_after(1):
            await got.wait()
        assert time.monotonic() - start < 0.4

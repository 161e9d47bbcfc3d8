"""Lease-based leader election (``coordination.k8s.io/v1``), client-go's algorithm and defaults.

* Defaults: lease duration 15 s, renew deadline 10 s, retry period 2 s, jitter 1.2; the
  constructor requires ``lease_duration > renew_deadline > 1.2 * retry_period``.
* Validity is judged on the **local** clock: another holder's lease counts as held until
  ``lease_duration`` after *we* last saw its record change (clock skew is harmless). The local clock is
  the event loop's (``anyio.current_time``, monotonic), the one its sleeps and deadlines use.
* Each API call is bounded by ``max(renew_deadline / 2, 1 s)``.
* The leader renews every ``retry_period``; if no renewal succeeds within ``renew_deadline``
  it stops leading (:class:`LeaderElectionLost`), which happens before any other candidate can
  take the lease (``renew_deadline < lease_duration``). There is no fencing beyond this timing.
"""

from __future__ import annotations

import logging
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio

from controller.runtime import metrics
from controller.runtime.client import Client
from controller.runtime.errors import ApiError, Conflict, NotFound
from controller.runtime.objects import JsonObject
from controller.runtime.resource import LEASES

log = logging.getLogger(__name__)

JITTER_FACTOR = 1.2


class LeaderElectionLost(Exception):
    """This process held the lease and failed to renew it in time."""


def _micro_time(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    """``hostname_uuid``, as controller-runtime."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElector:
    """Campaigns for one Lease and runs a callback while holding it."""

    def __init__(
        self,
        client: Client,
        *,
        name: str,
        namespace: str,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = False,
    ):
        if not lease_duration > renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if not renew_deadline > JITTER_FACTOR * retry_period:
            raise ValueError("renew_deadline must be greater than 1.2 * retry_period")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self.api_timeout = max(renew_deadline / 2, 1.0)
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) as last seen
        self._observed_at = 0.0
        self._observed_duration = lease_duration
        self._observed_rv: str | None = None
        self._lease: JsonObject | None = None
        self.is_leader = False
        self._status = metrics.LEADER_ELECTION_STATUS.labels(name=name)
        self._status.set(0)

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Acquire the lease, then run ``lead()`` while renewing; raise :class:`LeaderElectionLost`.

        Returns normally if ``lead()`` returns (the lease is released if ``release_on_cancel``).
        """
        await self._acquire()
        lost = False
        try:
            async with anyio.create_task_group() as tg:

                async def renew_then_cancel() -> None:
                    nonlocal lost
                    await self._renew_loop()
                    lost = True
                    tg.cancel_scope.cancel()

                async def lead_then_cancel() -> None:
                    await lead()
                    tg.cancel_scope.cancel()

                tg.start_soon(renew_then_cancel)
                tg.start_soon(lead_then_cancel)
        finally:
            self.is_leader = False
            self._status.set(0)
            if not lost and self.release_on_cancel:
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.api_timeout):
                    await self._release()
        if lost:
            raise LeaderElectionLost(f"lease {self.namespace}/{self.name} lost by {self.identity}")

    async def _acquire(self) -> None:
        log.info("%s campaigning for lease %s/%s", self.identity, self.namespace, self.name)
        while True:
            if await self._try_acquire_or_renew():
                self.is_leader = True
                self._status.set(1)
                log.info("%s acquired lease %s/%s", self.identity, self.namespace, self.name)
                return
            delay = self.retry_period * (1.0 + random.random() * JITTER_FACTOR)
            if self._observed is not None and self._observed[0] not in ("", self.identity):
                # wake right when the holder's lease expires on our clock, not up to a jittered period later
                expires_in = self._observed_at + self._observed_duration - anyio.current_time()
                delay = min(delay, max(expires_in, 0.0) + 0.05)
            await anyio.sleep(delay)

    async def _renew_loop(self) -> None:
        """Renew every retry period; return when renewals failed for ``renew_deadline``."""
        while True:
            deadline = anyio.current_time() + self.renew_deadline
            renewed = False
            while anyio.current_time() < deadline:
                with anyio.move_on_after(max(deadline - anyio.current_time(), 0.0)):
                    renewed = await self._try_acquire_or_renew()
                if renewed:
                    break
                await anyio.sleep(min(self.retry_period, max(deadline - anyio.current_time(), 0.0)))
            if not renewed:
                log.error(
                    "%s failed to renew lease %s/%s within %.1f s",
                    self.identity,
                    self.namespace,
                    self.name,
                    self.renew_deadline,
                )
                return
            await anyio.sleep(self.retry_period)

    def _record(self, holder: str, acquire: str, transitions: int) -> JsonObject:
        now = _micro_time()
        return {
            "holderIdentity": holder,
            "leaseDurationSeconds": round(self.lease_duration),
            "acquireTime": acquire or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def _try_acquire_or_renew(self) -> bool:
        try:
            with anyio.fail_after(self.api_timeout):
                return await self._attempt()
        except (ApiError, TimeoutError) as err:
            log.info("lease %s/%s attempt failed: %s", self.namespace, self.name, err)
            return False

    async def _attempt(self) -> bool:
        # Fast path: we hold it and our cached copy is current.
        if self.is_leader and self._lease is not None:
            lease = self._lease
            spec = lease.get("spec") or {}
            lease["spec"] = {
                **spec,
                **self._record(
                    self.identity, spec.get("acquireTime", ""), int(spec.get("leaseTransitions", 0))
                ),
            }
            try:
                self._lease = await self.client.replace(LEASES, lease)
                self._observe(self._lease)
                return True
            except Conflict:
                metrics.LEADER_ELECTION_SLOWPATH.labels(name=self.name).inc()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except NotFound:
            body: JsonObject = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._record(self.identity, "", 0),
            }
            try:
                self._lease = await self.client.create(LEASES, body, self.namespace)
            except Conflict:
                return False
            self._observe(self._lease)
            return True
        self._observe(lease)
        spec: JsonObject = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and self._observed_at + duration > anyio.current_time():
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            lease["spec"] = {**spec, **self._record(holder, str(spec.get("acquireTime") or ""), transitions)}
        else:
            lease["spec"] = {**spec, **self._record(self.identity, "", transitions + 1)}
            lease["spec"].pop("preferredHolder", None)
        try:
            self._lease = await self.client.replace(LEASES, lease)
        except Conflict:
            return False
        self._observe(self._lease)
        return True

    def _observe(self, lease: JsonObject) -> None:
        spec: JsonObject = lease.get("spec") or {}
        record = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = anyio.current_time()
        self._observed_duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)

    async def _release(self) -> None:
        if self._lease is None:
            return
        lease = self._lease
        lease["spec"] = {
            **(lease.get("spec") or {}),
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "renewTime": _micro_time(),
        }
        try:
            await self.client.replace(LEASES, lease)
        except ApiError as err:
            log.info("could not release lease: %s", err)

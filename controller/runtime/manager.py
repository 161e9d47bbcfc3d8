"""Manager: owns the client, the shared informers, leader election, HTTP endpoints and controllers.

Lifecycle of :meth:`Manager.run`:

1. Start the metrics and health servers (``/metrics``; ``/healthz``, ``/readyz``).
2. Start every informer and wait for all caches to sync (``cache_sync_timeout``, default
   2 min); ``/readyz`` turns 200 once synced.
3. With ``leader_election``, campaign for the Lease (15 s / 10 s / 2 s); run the controllers
   only while leader. Informers and event handlers run on every replica, so a standby's queue
   is warm when it takes over, but no reconcile runs outside leadership. On becoming leader
   (also without leader election, where the manager always leads) the ``on_started_leading``
   hooks are called, then the controllers start.
4. On :meth:`stop` (or SIGTERM/SIGINT with ``handle_signals``): stop starting reconciles,
   wait up to ``graceful_shutdown_timeout`` (30 s) for in-flight ones, then cancel everything.
5. On lost leadership: cancel at once (no graceful wait) and raise :class:`LeaderElectionLost`.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
from opentelemetry.trace import TracerProvider

from controller.runtime import metrics, tracing
from controller.runtime.cache import Transform, strip_managed_fields
from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.health import metrics_app, probes_app
from controller.runtime.httpserver import HttpServer, parse_address
from controller.runtime.informer import Informer
from controller.runtime.leader import LeaderElectionLost, LeaderElector
from controller.runtime.resource import Resource
from controller.runtime.throttle import throttled

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_SYNC_PERIOD = 10 * 3600.0

Runnable = Callable[[], Coroutine[Any, Any, None]]


class CacheSyncTimeout(Exception):
    """Caches did not sync within ``cache_sync_timeout``."""


def default_namespace() -> str:
    """The service account's namespace in a pod, else ``POD_NAMESPACE``, else ``default``."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return os.environ.get("POD_NAMESPACE", "default")


class Manager:
    """Runs informers and controllers for one operator process.

    Options (defaults as controller-runtime): ``leader_election`` off; ``leader_election_id``
    required when on (when off, it only names ``leader_election_master_status``, 1 while running);
    ``leader_election_namespace`` = the service-account namespace;
    ``lease_duration`` 15 s, ``renew_deadline`` 10 s, ``retry_period`` 2 s;
    ``leader_election_release_on_cancel`` off (on: a graceful stop frees the Lease once the controllers have
    stopped, so a standby takes over at once instead of after ``lease_duration``; only safe when the process
    exits right after :meth:`run` returns);
    ``metrics_bind_address`` ``"127.0.0.1:8080"`` (``"0"`` disables);
    ``health_probe_bind_address`` ``"0"`` (off); ``cache_sync_timeout`` 120 s;
    ``graceful_shutdown_timeout`` 30 s; ``sync_period`` 10 h (jittered x[0.9, 1.1));
    ``watchdog_timeout`` 90 s; ``namespace`` ``None`` = all namespaces; ``compact_cache`` off
    (store cached objects as compact JSON, see :class:`~controller.runtime.cache.Cache`);
    ``tracer_provider`` defaults to an OTLP exporter when ``OTEL_*`` configures one, else none.
    """

    def __init__(
        self,
        client: Client,
        *,
        namespace: str | None = None,
        leader_election: bool = False,
        leader_election_id: str | None = None,
        leader_election_namespace: str | None = None,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        leader_election_release_on_cancel: bool = False,
        metrics_bind_address: str = "127.0.0.1:8080",
        health_probe_bind_address: str = "0",
        cache_sync_timeout: float = 120.0,
        graceful_shutdown_timeout: float = 30.0,
        sync_period: float | None = DEFAULT_SYNC_PERIOD,
        watchdog_timeout: float = 90.0,
        compact_cache: bool = False,
        tracer_provider: TracerProvider | None = None,
        handle_signals: bool = False,
    ):
        if leader_election and not leader_election_id:
            raise ValueError("leader_election_id is required when leader_election is on")
        self.client = client
        self.namespace = namespace
        self.cache_sync_timeout = cache_sync_timeout
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.sync_period = sync_period
        self.watchdog_timeout = watchdog_timeout
        self.compact_cache = compact_cache
        self.tracer_provider = tracer_provider or tracing.configure_from_env()
        if tracer_provider is not None:
            client.trace_with(tracer_provider)  # its requests are children of the reconcile spans
        self.handle_signals = handle_signals
        self.metrics_address = parse_address(metrics_bind_address)
        self.probe_address = parse_address(health_probe_bind_address)
        self.elector: LeaderElector | None = None
        self.leader_id = leader_election_id
        if leader_election:
            assert leader_election_id is not None
            self.elector = LeaderElector(
                client,
                name=leader_election_id,
                namespace=leader_election_namespace or default_namespace(),
                identity=identity,
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
                release_on_cancel=leader_election_release_on_cancel,
            )
        self.controllers: list[Controller] = []
        self._informers: dict[tuple[Resource, str | None], Informer] = {}
        self._leader_runnables: list[Runnable] = []
        self._runnables: list[Runnable] = []
        self._started_leading: list[Callable[[], None]] = []
        self.health_checks: dict[str, Callable[[], bool]] = {"ping": lambda: True}
        self.ready_checks: dict[str, Callable[[], bool]] = {"informers-synced": self._synced}
        self.elected = anyio.Event()
        self.ports: dict[str, int] = {}
        self._stop = anyio.Event()
        self._started = False

    @classmethod
    async def connect(
        cls, kubeconfig: str | Path | None = None, *, qps: float = 0.0, burst: int = 0, **options: object
    ) -> Manager:
        """A manager with a kr8s-authenticated client (kubeconfig / ``KUBECONFIG`` / in-cluster).

        ``qps``/``burst`` throttle that client like client-go's token bucket (``qps <= 0``: unthrottled).
        """
        client = await Client.connect(kubeconfig)
        client.transport = throttled(client.transport, qps, burst)
        return cls(client, **options)  # type: ignore[arg-type]

    # --- registration ------------------------------------------------------------------------

    def informer(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        transform: Transform | None = None,
        compact: bool | None = None,
        paged_first_list: bool | None = None,
    ) -> Informer:
        """The shared informer for ``resource`` (created on first use; scoped to ``namespace``).

        ``transform`` replaces the default (:func:`~controller.runtime.cache.strip_managed_fields`) for this
        resource and ``compact`` the manager's ``compact_cache`` (as controller-runtime's cache
        ``ByObject``); both only take effect on first use: asking an existing informer for other ones
        is an error, since objects already cached went through the first ones. ``paged_first_list``
        (default off) lists in pages at ``""`` first (see :mod:`~controller.runtime.reflector`).
        """
        ns = namespace if namespace is not None else self.namespace
        key = (resource, ns)
        informer = self._informers.get(key)
        if informer is None:
            if self._started:
                raise RuntimeError("informers must be requested before Manager.run()")
            informer = Informer(
                self.client,
                resource,
                namespace=ns,
                transform=transform or strip_managed_fields,
                resync_period=self.sync_period,
                watchdog_timeout=self.watchdog_timeout,
                compact=self.compact_cache if compact is None else compact,
                paged_first_list=bool(paged_first_list),
            )
            self._informers[key] = informer
        elif (
            (transform is not None and informer.cache.transform is not transform)
            or (compact is not None and informer.cache.compact != compact)
            or (paged_first_list is not None and informer.reflector.paged_first_list != paged_first_list)
        ):
            raise ValueError(
                f"the informer for {resource} already exists with other options; "
                "pass them where it is first requested (before controllers are added)"
            )
        return informer

    def add(self, controller: Controller) -> Controller:
        """Register a controller (its name must be unique)."""
        if any(c.name == controller.name for c in self.controllers):
            raise ValueError(f"controller name {controller.name!r} is already used; names must be unique")
        controller.bind(self)
        self.controllers.append(controller)
        return controller

    def add_runnable(self, runnable: Runnable, *, need_leader_election: bool = True) -> None:
        """Run an extra coroutine function (while leader, unless ``need_leader_election=False``)."""
        (self._leader_runnables if need_leader_election else self._runnables).append(runnable)

    def on_started_leading(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` when this manager starts leading, before its controllers start.

        As client-go's ``OnStartedLeading``: a notification, so it must not block (start work on a
        runnable and let the hook wake it). A hook that raises is logged and does not stop the others.
        """
        self._started_leading.append(hook)

    # --- state --------------------------------------------------------------------------------

    def _synced(self) -> bool:
        return all(i.has_synced for i in self._informers.values())

    @property
    def is_leader(self) -> bool:
        """True while this manager runs its leader-only work."""
        return self.elected.is_set() and not self._stop.is_set()

    def stop(self) -> None:
        """Ask :meth:`run` to shut down gracefully."""
        self._stop.set()

    # --- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop`; raises :class:`LeaderElectionLost` or :class:`CacheSyncTimeout`."""
        self._started = True
        lost: list[LeaderElectionLost] = []
        failures: list[CacheSyncTimeout] = []
        try:
            async with anyio.create_task_group() as tg:
                if self.handle_signals:
                    tg.start_soon(self._watch_signals)
                if self.metrics_address:
                    server = HttpServer(metrics_app(), *self.metrics_address, name="metrics")
                    self.ports["metrics"] = await tg.start(server.serve)
                if self.probe_address:
                    probes = probes_app(self.health_checks, self.ready_checks)
                    server = HttpServer(probes, *self.probe_address, name="health probes")
                    self.ports["probes"] = await tg.start(server.serve)
                for informer in self._informers.values():
                    tg.start_soon(informer.run)
                for runnable in self._runnables:
                    tg.start_soon(runnable)
                try:
                    await self._wait_synced()
                    await self._lead_or_wait(lost)
                except CacheSyncTimeout as err:
                    failures.append(err)
                tg.cancel_scope.cancel()
        finally:
            self._stop.set()
        if failures:
            raise failures[0]
        if lost:
            raise lost[0]

    async def _wait_synced(self) -> None:
        with anyio.move_on_after(self.cache_sync_timeout):
            for informer in self._informers.values():
                await informer.wait_synced()
            return
        pending = [str(i.resource) for i in self._informers.values() if not i.has_synced]
        raise CacheSyncTimeout(f"caches not synced within {self.cache_sync_timeout} s: {pending}")

    async def _lead_or_wait(self, lost: list[LeaderElectionLost]) -> None:
        async with anyio.create_task_group() as tg:

            async def campaign() -> None:
                try:
                    if self.elector is None:
                        if self.leader_id is not None:
                            # Alone, this replica always reconciles: the leader gauge says so (dashboards
                            # that show the leader show data without --leader-elect too).
                            metrics.LEADER_ELECTION_STATUS.labels(name=self.leader_id).set(1)
                        await self._lead()
                    else:
                        await self.elector.run(self._lead)
                except LeaderElectionLost as err:
                    log.error("%s; exiting without graceful shutdown", err)
                    lost.append(err)
                tg.cancel_scope.cancel()

            tg.start_soon(campaign)
            await self._stop.wait()
            if self.elected.is_set():
                with anyio.move_on_after(self.graceful_shutdown_timeout):
                    async with anyio.create_task_group() as drain:
                        for controller in self.controllers:
                            drain.start_soon(controller.drain)
            tg.cancel_scope.cancel()

    async def _lead(self) -> None:
        self.elected.set()
        for hook in self._started_leading:
            try:
                hook()
            except Exception:
                log.exception("on-started-leading hook %r failed", hook)
        log.info("starting %d controllers", len(self.controllers))
        async with anyio.create_task_group() as tg:
            for controller in self.controllers:
                tg.start_soon(controller.run)
            for runnable in self._leader_runnables:
                tg.start_soon(runnable)
            await self._stop.wait()
            # let drain finish (the caller bounds it), then stop the rest
            await anyio.sleep_forever()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("received signal %s; shutting down", signum)
                self.stop()
                return

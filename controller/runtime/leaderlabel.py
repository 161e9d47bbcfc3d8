"""The leader labels its own pod, so a Service can route to the leader alone.

Some endpoints are served only while a replica leads (they act on the leader's in-memory state). A
Service in front of them that selects only the Deployment's labels sends each connection to any replica,
and the standby refuses it. With :class:`LeaderLabel`, the replica that starts leading merge-patches
``<key>: "true"`` onto its own pod (named by ``POD_NAME``/``POD_NAMESPACE`` from the downward API); a
Service that also selects that label has the leader as its only endpoint.

There is no unlabelling on lost leadership: the manager then exits at once (see
:class:`~controller.runtime.leader.LeaderElectionLost`), and its restarted container clears the label from its
pod first thing, before it could be elected again, so a stale label lasts no longer than the restart
(during which the pod is not ready, so no Service routes to it anyway). Outside a cluster (no
``POD_NAME``) nothing is labelled.

Metric: ``leader_election_pod_label_total{action, result}`` (``set``/``clear``; ``success``, ``error``,
``not_found``); the patch is a client request, so it has its span when tracing is on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anyio

from controller.runtime import metrics
from controller.runtime.backoff import Backoff
from controller.runtime.client import Client
from controller.runtime.errors import ApiError, NotFound
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS

log = logging.getLogger(__name__)

LABEL_VALUE = "true"


@dataclass(frozen=True, slots=True)
class OwnPod:
    """The pod this process runs in."""

    namespace: str
    name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_namespace: Callable[[], str]) -> OwnPod | None:
        """``POD_NAME`` in ``POD_NAMESPACE`` (else ``default_namespace()``); None without ``POD_NAME``."""
        name = env.get("POD_NAME", "").strip()
        if not name:
            return None
        return cls(env.get("POD_NAMESPACE", "").strip() or default_namespace(), name)


def label_patch(key: str, value: str | None) -> JsonObject:
    """The merge patch that sets ``key`` to ``value`` on a pod's labels (``None`` removes it)."""
    return {"metadata": {"labels": {key: value}}}


class LeaderLabel:
    """Clears ``key`` from the own pod at start, sets it to ``"true"`` once :meth:`started_leading` is called.

    Run :meth:`run` on every replica (not only the leader) and register :meth:`started_leading` as the
    manager's on-started-leading hook. Both patches are retried with backoff until they succeed (a 403
    means the Role lacks ``patch`` on pods; fixing it needs no restart); a 404 means ``POD_NAME`` does not
    name this pod and is not retried.
    """

    def __init__(self, client: Client, pod: OwnPod, key: str, *, backoff: Callable[[], Backoff] = Backoff):
        self.client = client
        self.pod = pod
        self.key = key
        self._backoff = backoff
        self._leading = anyio.Event()
        self.labelled = False
        for action in ("set", "clear"):
            for result in metrics.LEADER_POD_LABEL_RESULTS:
                metrics.LEADER_POD_LABEL.labels(action=action, result=result)

    def started_leading(self) -> None:
        """The manager's hook: label the pod (from :meth:`run`'s task, after the clearing patch)."""
        self._leading.set()

    async def run(self) -> None:
        """Clear a stale label, wait for leadership, then label; returns once labelled (or on a 404)."""
        if not await self._apply(None):
            return
        await self._leading.wait()
        self.labelled = await self._apply(LABEL_VALUE)

    async def _apply(self, value: str | None) -> bool:
        action = "clear" if value is None else "set"
        fields = {"pod": f"{self.pod.namespace}/{self.pod.name}", "label": self.key, "action": action}
        backoff = self._backoff()
        while True:
            try:
                await self.client.patch(PODS, self.pod.name, label_patch(self.key, value), self.pod.namespace)
            except NotFound:
                metrics.LEADER_POD_LABEL.labels(action=action, result="not_found").inc()
                log.error(
                    "own pod not found; set POD_NAME and POD_NAMESPACE from the downward API "
                    "(metadata.name, metadata.namespace)",
                    extra=fields,
                )
                return False
            except ApiError as err:
                delay = backoff.next()
                metrics.LEADER_POD_LABEL.labels(action=action, result="error").inc()
                log.error(
                    "could not patch the leader label on own pod; retrying",
                    extra={**fields, "error": str(err), "retry_in_s": round(delay, 2)},
                )
                await anyio.sleep(delay)
                continue
            metrics.LEADER_POD_LABEL.labels(action=action, result="success").inc()
            log.info("leader label %s on own pod", "set" if value else "cleared", extra=fields)
            return True

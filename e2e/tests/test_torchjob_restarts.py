"""The operator SIGKILLed and restarted while jobs are being created: no pod is ever created twice.

A small version of ``e2e.bench.bench_restarts`` (10 jobs, 5 restarts); the operator runs as `pyroclast run`
processes, and pod creates are counted by the apiserver.
"""

from __future__ import annotations

import pytest

from e2e.bench.restarts import log_of, storm
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool

pytestmark = pytest.mark.slow


def test_operator_killed_and_restarted_during_creation_creates_no_duplicates(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="16")
    out = storm(cluster, nodes, namespace, jobs=10, restarts=5, workers=2, settle_timeout=40.0)
    detail = f"{out}; operator log {log_of(cluster, namespace)}"
    assert out.restarts == 5
    assert out.problems == [], detail
    assert out.pods == 20, detail
    # No pod was created twice (a delete-and-recreate would count more 201s than pods). Fewer is possible:
    # a SIGKILL mid-request leaves a stored pod whose 201 was never answered to the killed client.
    assert out.creates_ok <= out.pods, detail

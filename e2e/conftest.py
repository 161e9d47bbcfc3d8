"""pytest fixtures for cluster tests: `cluster` (session), `namespace` and `nodes` (per test).

Tests that use `cluster` are marked `cluster` automatically. When the binaries or Go modules are missing the
cluster tests are skipped with a loud reason, unless PYROCLAST_REQUIRE_CLUSTER=1, where they fail
(tests/required.py).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from e2e.cluster import (
    BinaryNotFoundError,
    Cluster,
    ModuleNotFoundInCacheError,
    install_signal_handlers,
)
from e2e.cluster.operator import install_crd
from e2e.cluster.pool import NodePool
from e2e.cluster.process_nodes import ProcessNodePool
from pyroclast.cli import main
from tests.required import missing

log = logging.getLogger(__name__)

_active: Cluster | None = None
_unavailable: str | None = None
LOG_TAIL_LINES = 30


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the cluster (directly or through another fixture)."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A ready cluster: API healthy, Volcano CRDs established, queue `default` Open; no shared nodes."""
    global _active, _unavailable
    install_signal_handlers()
    c = Cluster()
    try:
        c.start()
    except (BinaryNotFoundError, ModuleNotFoundInCacheError) as exc:
        _unavailable = str(exc)
        missing(f"CLUSTER UNAVAILABLE, cluster tests cannot run: {exc}")
    _active = c
    log.info("cluster up in %.1f s: %s", c.ready_seconds or 0.0, c.timings)
    try:
        yield c
    finally:
        _active = None
        c.stop()


@pytest.fixture(autouse=True)
def _restore_components(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a cluster test, restart components it left stopped (or that died) so the next test is sane."""
    yield
    if "cluster" in request.fixturenames:
        _heal(request.node.nodeid)


def _heal(nodeid: str) -> None:
    c = _active
    if c is None:
        return
    for name in c.component_names():
        if c.pid(name) is None:
            log.warning("component %s is down after %s; restarting it", name, nodeid)
            c.start_component(name)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace `t-<8 hex>`, deleted after the test."""
    name = f"t-{secrets.token_hex(4)}"
    cluster.create_namespace(name)
    try:
        yield name
    finally:
        _heal(request.node.nodeid)
        if cluster.pid("kube-apiserver") is not None:
            try:
                cluster.api.delete(f"/api/v1/namespaces/{name}")
                _purge(cluster, name)
            except Exception:
                log.exception("deleting namespace %s", name)


def _purge(cluster: Cluster, namespace: str) -> None:
    """Remove a deleted namespace's pods and PodGroups at once.

    Pods on a test's deleted kwok nodes would otherwise wait for PodGC, and their namespace with them, while
    the PodGroups still count as Inqueue in Volcano's overcommit check and keep the next test's gang Pending.
    """
    force = {"gracePeriodSeconds": 0, "propagationPolicy": "Background"}
    for path in (
        f"/api/v1/namespaces/{namespace}/pods",
        f"/apis/scheduling.volcano.sh/v1beta1/namespaces/{namespace}/podgroups",
    ):
        cluster.api.request("DELETE", path, body=force)


Pool = TypeVar("Pool", NodePool, ProcessNodePool)


def _per_test(cluster: Cluster, request: pytest.FixtureRequest, pool: Pool, what: str) -> Iterator[Pool]:
    """Yield `pool`; afterwards restart components the test took down, then delete the pool's nodes."""
    try:
        yield pool
    finally:
        _heal(request.node.nodeid)
        if cluster.pid("kube-apiserver") is not None:
            try:
                pool.delete_all()
            except Exception:
                log.exception("deleting %s %s", what, pool.id)


@pytest.fixture
def nodes(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[NodePool]:
    """Per-test kwok nodes: `nodes(2, cpu="4")`; pods pin to them with `nodes.node_selector`."""
    yield from _per_test(cluster, request, NodePool(cluster), "node pool")


@pytest.fixture
def process_nodes(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[ProcessNodePool]:
    """Per-test process nodes (real processes in their own namespaces): `process_nodes(2, cpu="4")`; pods pin
    to them with `process_nodes.node_selector`. Where the machine cannot create namespaces (not root) the test
    fails under PYROCLAST_REQUIRE_CLUSTER=1 and is skipped loudly elsewhere."""
    if cluster.pod_network is None:
        missing(f"process nodes: {cluster.pod_network_unavailable or 'the rig has no pod network'}")
    yield from _per_test(cluster, request, ProcessNodePool(cluster), "process node pool")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach every component's log tail to a failing cluster test's report."""
    report = yield
    c = _active
    if c is None or not report.failed or "cluster" not in getattr(item, "fixturenames", ()):
        return report
    for name in c.component_names():
        report.sections.append(
            (f"cluster log: {name} (last {LOG_TAIL_LINES} lines)", c.log_tail(name, LOG_TAIL_LINES))
        )
    report.sections.append(("cluster workdir", str(c.workdir)))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat the reason loudly when cluster tests were skipped."""
    if _unavailable:
        terminalreporter.write_sep("!", "CLUSTER TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_unavailable, red=True)


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> str:
    """The TorchJob CRD, generated from the models, applied and served."""
    return install_crd(cluster)


CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> CliRun:
    """Run `pyroclast ARGS... --kubeconfig <rig>` in process: (exit code, stdout, stderr). The kubeconfig goes
    before a `--` (after it comes a job's command); `kubeconfig=` runs as someone else."""
    assert cluster.api is not None  # writes the admin kubeconfig

    def run(*argv: str, kubeconfig: Path | None = None) -> tuple[int, str, str]:
        words = list(argv)
        cut = words.index("--") if "--" in words else len(words)
        words[cut:cut] = ["--kubeconfig", str(kubeconfig or cluster.kubeconfig)]
        capsys.readouterr()
        code = main(words)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def qname(cluster: Cluster) -> Iterator[str]:
    """A fresh queue name; the queue (and its Commands) are removed after the test."""
    name = f"q-{secrets.token_hex(4)}"
    yield name
    cluster.kubectl("delete", "queue", name, "--ignore-not-found", "--wait=false", check=False)


PRIORITY_CLASSES = "/apis/scheduling.k8s.io/v1/priorityclasses"


@pytest.fixture
def priorities(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A (low, high) pair of PriorityClasses unique to the test."""
    suffix = secrets.token_hex(3)
    low, high = f"pc-low-{suffix}", f"pc-high-{suffix}"
    for name, value in ((low, 100), (high, 1000)):
        body = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}}
        cluster.api.create(PRIORITY_CLASSES, {**body, "value": value})
    yield low, high
    for name in (low, high):
        cluster.api.delete(f"{PRIORITY_CLASSES}/{name}")

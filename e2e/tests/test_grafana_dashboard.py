"""The Grafana dashboard works on a default install: every panel expression and variable query selects
metrics and labels that `pyroclast run`, with its default flags (no --leader-elect), exports on the local
cluster once a job ran, except the panels in RATE_PANELS, which need a rates file; with one, every query
does (checked against the real /metrics page with e2e/promql; no Prometheus needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Final

import httpx
import pytest

from controller.runtime.client import Client
from controller.torchjob.kinds import TORCHJOBS
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.cluster.ports import HOST, free_port
from e2e.promql import missing, scrape, selects
from e2e.torchjobs import stop_process, torchjob, wait_for, wait_phase

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "pyroclast-dashboard.json"
# Panels with nothing to show without --rates: a job's cost, and so pyroclast_torchjob_cost_total (its
# currency is a label), exists only at an admin's rates.
RATE_PANELS: Final = frozenset({"Cost / h by queue"})


def _queries(rates: bool) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target (without `rates`, not those of RATE_PANELS) and every query
    variable."""
    board = json.loads(DASHBOARD.read_text())
    assert {p["title"] for p in board["panels"]} >= RATE_PANELS, "a rate panel was renamed or removed"
    found = [
        (f"panel {p['title']!r}", t["expr"])
        for p in board["panels"]
        if rates or p["title"] not in RATE_PANELS
        for t in p.get("targets", [])
    ]
    found += [
        (f"variable ${v['name']}", v["query"]["query"])
        for v in board["templating"]["list"]
        if v["type"] == "query"
    ]
    return found


def _start_operator(cluster: Cluster, port: int, log_path: Path, rates: bool) -> subprocess.Popen[bytes]:
    """`pyroclast run` with its default flags: only the kubeconfig, a free port for /metrics instead of 8080
    (the machine is shared) and, with `rates`, a rates file."""
    argv = [
        sys.executable, "-m", "pyroclast.cli", "run", "--kubeconfig", str(cluster.kubeconfig),
        "--metrics-bind-address", f"{HOST}:{port}",
    ]  # fmt: skip
    if rates:
        prices = log_path.parent / "rates.yaml"
        prices.write_text("currency: USD\nperHour: {gpu: 2.5, cpu: 0.04, memoryGiB: 0.005}\n")
        argv += ["--rates", str(prices)]
    with log_path.open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("rates", [False, True], ids=["default-flags", "with-rates"])
async def test_every_dashboard_query_selects_what_a_default_operator_exports(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, tmp_path: Path, rates: bool
) -> None:
    nodes(4, cpu="4")
    port, log_path = free_port(), tmp_path / "operator.log"
    proc = _start_operator(cluster, port, log_path, rates)
    try:
        client = await Client.connect(cluster.kubeconfig)
        done = torchjob("done", nodes, annotations={"pyroclast.dev/test-succeed-after": "2s"})
        await client.create(TORCHJOBS, done, namespace)
        await client.create(TORCHJOBS, torchjob("going", nodes), namespace)
        await wait_phase(client, namespace, "done", "Succeeded", within=90)
        await wait_phase(client, namespace, "going", "Running", within=60)

        async def page() -> str | None:
            async with httpx.AsyncClient(timeout=5) as http:
                text = (await http.get(f"http://{HOST}:{port}/metrics")).text
            return text if "pyroclast_torchjob_time_to_running_seconds_count" in text else None

        text = await wait_for("the operator's /metrics", page)
        samples = scrape(text)
        problems = {
            where: gaps for where, query in _queries(rates) if (gaps := missing(selects(query), samples))
        }
        assert problems == {}, f"dashboard queries with nothing to show on a default install: {problems}"
        # Alone (no --leader-elect), the replica always reconciles, and its leader gauge says so.
        assert 'leader_election_master_status{name="pyroclast-operator"} 1.0' in text.splitlines()
    finally:
        stop_process(proc)
    assert proc.returncode == 0, log_path.read_text()[-4000:]

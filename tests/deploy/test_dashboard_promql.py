"""e2e/promql: the selectors and grouping labels read out of PromQL, and what a scrape lacks of them."""

from __future__ import annotations

import json
from pathlib import Path

from e2e.promql import Matcher, Sample, Selector, missing, scrape, selects

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "pyroclast-dashboard.json"


def test_selectors_functions_ranges_and_grouping() -> None:
    sel = selects(
        'histogram_quantile(0.99, sum by (le, queue) (rate(x_bucket{job=~"$job", name="torchjob"}[5m])))'
        " / on(instance) group_left sum without (code) (y_total) or vector(0)"
    )
    assert sel.selectors == (
        Selector("x_bucket", (Matcher("job", "=~", "$job"), Matcher("name", "=", "torchjob"))),
        Selector("y_total"),
    )
    assert sel.grouping == {"le", "queue", "instance", "code"}


def test_label_values_queries() -> None:
    sel = selects('label_values(up_gauge{controller="torchjob", phase!~"A|B"}, job)')
    assert sel.selectors == (
        Selector("up_gauge", (Matcher("controller", "=", "torchjob"), Matcher("phase", "!~", "A|B"))),
    )
    assert sel.grouping == {"job"}


PAGE = """\
# HELP jobs TorchJobs
# TYPE jobs gauge
jobs{phase="Running",queue="default"} 1.0
# HELP restarts_total Restarts
# TYPE restarts_total counter
restarts_total{cause="failure"} 0.0
"""


def test_missing_names_each_absent_metric_series_and_label() -> None:
    page = scrape(PAGE)
    assert Sample("jobs", {"phase": "Running", "queue": "default"}) in page
    assert missing(selects('sum by (queue) (jobs{job=~"$job", phase=~"Queued|Running"})'), page) == []
    assert missing(selects("sum by (cause) (rate(restarts_total[5m]))"), page) == []
    assert missing(selects('jobs{phase="Failed"}'), page) == ['no series jobs{phase="Failed"}']
    assert missing(selects("leader_status"), page) == ["no series leader_status"]
    assert missing(selects("sum by (node) (jobs)"), page) == ["no selected series carries the label 'node'"]


def test_every_dashboard_query_parses_to_at_least_one_selector() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(queries) > 20
    for query in queries:
        assert selects(query).selectors, query

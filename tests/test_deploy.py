"""deploy/: the Grafana dashboard and the Prometheus alert rules are well formed and use
only metric names the code registers — read from a real server's and a real gateway's
/metrics (SQLite, and PostgreSQL for the read pool's gauges), so neither can drift from
the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import grpc
import httpx
import yaml

from jobcontrol.service.server import start_server
from jobcontrol.v1 import diagnostics_service_pb2, diagnostics_service_pb2_grpc
from tests.conftest import make_settings, postgres_database, start_gateway

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "jobcontrol.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# series Prometheus itself adds to every scrape target
PROMETHEUS_OWN = {"up"}
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
# PromQL words that look like names: operators, modifiers and aggregation clauses
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w$.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, label matchers, grouping
    labels, ranges, variables and keywords left out)."""
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)  # label matchers
    bare = re.sub(r"\[[^\]]*\]", " ", bare)  # ranges: [5m], [$__rate_interval]
    bare = _GROUPING.sub(" ", bare)
    bare = re.sub(r"\$\w+", " ", bare)  # dashboard variables
    return {n for n in _NAME.findall(bare) if n.lower() not in KEYWORDS}


def test_metric_names_of_promql() -> None:
    """The extraction itself, on the shapes the dashboard and the rules use."""
    expr = (
        "histogram_quantile(0.99, sum by (le, grpc_method) (rate(grpc_server_handling_seconds_"
        'bucket{job=~"$job", grpc_code!="OK"}[$__rate_interval]))) / scalar(sum(up)) > bool 1e3'
    )
    assert metric_names(expr) == {"grpc_server_handling_seconds_bucket", "up"}
    assert metric_names("a_total - on (instance) group_left (x) b offset 5m") == {
        "a_total",
        "b",
    }


def registered(exposition: str) -> dict[str, set[str]]:
    """Every family a /metrics page offers, with its series names: its samples' and, for a
    family without samples yet (labelled, never observed), the names its type gives."""
    families: dict[str, set[str]] = {}
    family = ""
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):  # a family's samples follow its TYPE line
            _, _, family, kind = line.split()
            families[family] = {family + s for s in SUFFIXES.get(kind, ("",))}
        elif line and not line.startswith("#"):
            sample = re.split(r"[{ ]", line, maxsplit=1)[0]
            assert sample.startswith(family), line
            families[family].add(sample)
    return families


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(url)
    assert reply.status_code == 200
    return reply.text


async def code_families(tmp_path: Path) -> dict[str, set[str]]:
    """The families a server on SQLite, its gateway and a server on PostgreSQL (the read
    pool's gauges) register, scraped from their /metrics after a call through each."""
    families: dict[str, set[str]] = {}
    for url in (f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", postgres_database()):
        settings = make_settings(tmp_path, database_url=url, metrics_address="127.0.0.1:0")
        running = await start_server(settings)
        try:
            assert running.metrics is not None
            async with grpc.aio.insecure_channel(running.address) as channel:
                stub = diagnostics_service_pb2_grpc.DiagnosticsServiceStub(channel)
                await stub.Echo(diagnostics_service_pb2.EchoRequest(message="x"))
            gateway, stop = await start_gateway(running.address, metrics_address="127.0.0.1:0")
            try:
                async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
                    assert (await http.get("/v1/collections/none")).status_code == 404
                assert gateway.app.metrics is not None
                families |= registered(await scrape(gateway.app.metrics.url))
            finally:
                await stop()
            page = await scrape(running.metrics.url)
            assert "grpc_server_handled_total{" in page  # a live registry: the Echo counted
            families |= registered(page)
        finally:
            await running.stop(grace=1.0)
    return families


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def alert_rules() -> list[dict[str, Any]]:
    loaded: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    [group] = loaded["groups"]
    assert group["name"] == "jobcontrol"
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def panels_of(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_exprs(board: dict[str, Any]) -> list[str]:
    """The expressions of every target and of the query variables' label_values(...)."""
    exprs = [t["expr"] for p in panels_of(board) for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            selector = re.fullmatch(r"label_values\((.*),\s*\w+\)", text)
            assert selector, text
            exprs.append(selector.group(1))
    return exprs


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["job"]["type"] == variables["instance"]["type"] == "query"
    panels = panels_of(board)
    assert len({p["id"] for p in panels}) == len(panels), "panel ids are unique"
    rows = [p["title"] for p in panels if p["type"] == "row"]
    for wanted in ("gRPC", "Gateway HTTP", "Writer", "Scheduler", "Workers"):
        assert any(wanted in title for title in rows), rows
    for panel in panels:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid) and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"] == panel["datasource"]
            # every series is narrowed to the chosen jobs and instances
            assert 'job=~"$job"' in expr and 'instance=~"$instance"' in expr, expr
            # a quantile from a histogram: over the rate of its buckets, kept by le
            if "histogram_quantile" in expr:
                assert re.search(r"sum by \(le\b", expr), expr
                assert re.search(r"rate\(\w+_bucket\{", expr), expr


def test_the_alert_rules_are_prometheus_rules() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(set(names)) == len(names)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["expr"].strip() and re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert {"up"} == metric_names(next(r["expr"] for r in rules if r["alert"].endswith("Down")))


async def test_every_metric_the_deploy_files_use_is_registered(tmp_path: Path) -> None:
    families = await code_families(tmp_path)
    series = set().union(*families.values())
    exprs = dashboard_exprs(dashboard()) + [rule["expr"] for rule in alert_rules()]
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - series - PROMETHEUS_OWN
        assert not unknown, f"{expr!r} uses {sorted(unknown)}: the code registers no such series"
        used |= names
    # and the dashboard leaves no family of the code out
    unseen = [family for family, names in families.items() if not names & used]
    assert not unseen, f"registered but on no panel: {unseen}"

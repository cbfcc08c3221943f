"""contrib/grafana-dashboard.json is import-ready and speaks of what the agent exports: every metric and
label its queries name is one a real `Metrics` registry serves (`watcher.report.metric_catalogue`)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.report.metric_catalogue import catalogue, exported_series

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "contrib" / "grafana-dashboard.json"
DATASOURCE = "${DS_PROMETHEUS}"
# Labels Prometheus adds to every scraped series.
SCRAPE_LABELS = {"job", "instance"}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
PROMQL_WORDS |= {"group_left", "group_right", "inf", "nan"}
LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
# What the dashboard shows, by the brief of issue 24: each of these is in at least one query.
SHOWN = {
    "minimax_watcher_uploads_total",
    "minimax_watcher_uploaded_bytes_total",
    "minimax_watcher_files",
    "minimax_watcher_account_paused",
    "minimax_watcher_folder_standing_by",
    "minimax_watcher_folder_lock_blocked",
    "minimax_watcher_upload_duration_seconds_bucket",
    "minimax_watcher_videos_total",
    "minimax_watcher_videos_in_flight",
    "minimax_watcher_video_seconds_bucket",
    "minimax_watcher_hook_runs_total",
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def queries(board: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression: the panels' targets and the template variables' label_values()."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in board["templating"]["list"]:
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match is not None, f"an unexpected variable query: {query}"
        yield match.group(1)


def _without_noise(expr: str) -> str:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values: text, not names
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana's variables: $instance, $__rate_interval
    return re.sub(r"\[[^\]]*\]", "", expr)  # range selectors


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: names not called as functions, nor keywords."""
    expr = _without_noise(expr)
    expr = re.sub(r"\{[^}]*\}", "", LABEL_LISTS.sub("", expr))
    words = re.findall(r"(?<![\w:.])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()", expr)
    return {w for w in words if w.lower() not in PROMQL_WORDS}


def label_names(expr: str) -> dict[str, set[str]]:
    """Per metric, the labels its selector matches on; under "*" the labels of by(...) and the like."""
    expr = _without_noise(expr)
    found: dict[str, set[str]] = {"*": set()}
    for lists in LABEL_LISTS.findall(expr):
        found["*"] |= {name.strip() for name in lists.split(",") if name.strip()}
    for metric, matchers in SELECTOR.findall(expr):
        names = {m.split("=")[0].strip(" !~") for m in matchers.split(",") if m.strip()}
        found.setdefault(metric, set()).update(names)
    return found


def unknown_metrics(board: dict[str, Any]) -> set[str]:
    exported = exported_series()
    return {name for expr in queries(board) for name in metric_names(expr)} - exported


def unknown_labels(board: dict[str, Any]) -> set[str]:
    by_series = {s: set(e.labels) for e in catalogue() for s in e.series}
    everywhere = set().union(*by_series.values()) | SCRAPE_LABELS | {"le"}
    wrong = set()
    for expr in queries(board):
        for metric, labels in label_names(expr).items():
            allowed = everywhere if metric == "*" else by_series.get(metric, set()) | SCRAPE_LABELS
            wrong |= {f"{metric}:{label}" for label in labels - allowed}
    return wrong


# ---- the parsing the checks rest on -----------------------------------------------------------------


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(minimax_watcher_video_seconds_bucket{instance=~"$x"}'
        "[$__rate_interval]))) / on(instance) group_left sum(up) * 1e3 and bool process_open_fds offset 5m"
    )
    assert metric_names(expr) == {"minimax_watcher_video_seconds_bucket", "up", "process_open_fds"}
    assert label_names(expr) == {
        "*": {"le", "instance"},
        "minimax_watcher_video_seconds_bucket": {"instance"},
    }


# ---- the file -----------------------------------------------------------------------------------------


def test_the_dashboard_is_import_ready() -> None:
    board = dashboard()
    (source,) = board["__inputs"]
    assert source["name"] == "DS_PROMETHEUS" and source["pluginId"] == "prometheus"
    assert board["id"] is None and board["uid"] and board["title"]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"]), "two panels with one id"
    for panel in panels:
        assert panel["datasource"]["uid"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE, panel["title"]
    used = {p["type"] for p in board["panels"]} - {"row"}
    assert used <= {r["id"] for r in board["__requires"] if r["type"] == "panel"}


def test_every_query_names_a_metric_the_agent_exports() -> None:
    assert unknown_metrics(dashboard()) == set()


def test_every_label_a_query_names_is_one_the_agent_exports() -> None:
    assert unknown_labels(dashboard()) == set()


def test_the_dashboard_shows_uploads_failures_pauses_locks_videos_and_hooks() -> None:
    named = {name for expr in queries(dashboard()) for name in metric_names(expr)}
    assert named >= SHOWN, SHOWN - named
    assert exported_series() >= SHOWN  # the list above is itself of real names


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="no promtool (.ci/install-system-packages adds it)"
)
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, as a recording rule, once Grafana's variables are filled in."""
    filled = {"$__rate_interval": "5m", "$__range": "1d", "$instance": ".*"}
    rules = []
    for index, expr in enumerate(queries(dashboard())):
        for variable, value in filled.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"a Grafana variable this test does not fill in: {expr}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("real", "typo"),
    [
        ("minimax_watcher_uploads_total", "minimax_watcher_upload_total"),
        ("minimax_watcher_video_seconds_bucket", "minimax_watcher_videos_seconds_bucket"),
        ("minimax_watcher_uploads_total, instance", "minimax_watcher_uploads, instance"),  # the variable
    ],
)
def test_a_misspelled_metric_is_caught(real: str, typo: str) -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8").replace(real, typo, 1))
    assert unknown_metrics(board) == {typo.split(",")[0]}


def test_a_misspelled_label_is_caught() -> None:
    board = copy.deepcopy(dashboard())
    panel = next(p for p in board["panels"] if "minimax_watcher_files{" in json.dumps(p))
    target = next(t for t in panel["targets"] if "minimax_watcher_files{" in t["expr"])
    target["expr"] = target["expr"].replace("minimax_watcher_files{", 'minimax_watcher_files{states="x",')
    assert unknown_labels(board) == {"minimax_watcher_files:states"}

"""contrib/prometheus-alerts.yml speaks of what the agent exports: every metric, label and label value its
rules name is one a real `Metrics` serves, and every rule is complete. Whether the rules fire when they
should is `promtool test rules contrib/prometheus-alerts.test.yml`, run by .ci/run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.report.metric_catalogue import catalogue
from watcher.report.metrics import HOOKS, UPLOAD_RESULTS

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "contrib" / "prometheus-alerts.yml"
RULE_TESTS = REPO / "contrib" / "prometheus-alerts.test.yml"
# Labels Prometheus adds to every scraped series, and the one series it makes per target.
SCRAPE_LABELS = {"job", "instance"}
SCRAPE_METRICS = {"up"}
LABEL_VALUES = {
    "result": set(UPLOAD_RESULTS) | {"ok", "failed"},
    "state": {"pending", "failed"},
    "hook": set(HOOKS),
}


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def exported() -> tuple[set[str], set[str]]:
    """The series names and label names a running agent serves (`metric_catalogue`: every metric)."""
    entries = catalogue()
    return {name for e in entries for name in e.series}, {label for e in entries for label in e.labels} | {
        "le"
    }


def test_the_rules_file_has_alerts() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) >= 6
    assert len(names) == len(set(names)), "two alerts with one name"


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_rule_is_complete(rule: dict[str, Any]) -> None:
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
    assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["for"]
    assert rule["labels"]["severity"] in ("warning", "critical")
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description"}
    # A description says what to do: it names a command to run.
    assert re.search(r"`(minimax-watcher|journalctl|systemctl) ", annotations["description"]), annotations


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_rule_names_only_what_the_agent_exports(rule: dict[str, Any]) -> None:
    sample_names, label_names = exported()
    expr = rule["expr"]
    for metric in re.findall(r"\b(minimax_watcher_\w+|process_\w+|python_\w+)\b", expr):
        assert metric in sample_names, f"{rule['alert']}: {metric} is not exported"
    named = set(re.findall(r"\b([a-z_]+)\s*(?:=~|!=|!~|=)\s*\"", expr))
    named |= {label for group in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr) for label in group.split(",")}
    templated = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
    for label in {name.strip() for name in named | templated}:
        assert label in label_names | SCRAPE_LABELS, f"{rule['alert']}: no series has the label {label}"
    for label, op, value in re.findall(r"\b([a-z_]+)\s*(=~|=)\s*\"([^\"]*)\"", expr):
        if label in LABEL_VALUES:
            values = value.split("|") if op == "=~" else [value]
            assert set(values) <= LABEL_VALUES[label], f"{rule['alert']}: {label}{op}{value!r}"
    bare = set(re.findall(r"(?<![\w$.\"])([a-z_]+)\{", expr)) - sample_names
    assert bare <= SCRAPE_METRICS, f"{rule['alert']}: {bare}"


def test_every_alert_has_a_promtool_test() -> None:
    tests = RULE_TESTS.read_text(encoding="utf-8")
    for rule in rules():
        assert f'alertname="{rule["alert"]}", alertstate="firing"' in tests, f"{rule['alert']} is not tested"

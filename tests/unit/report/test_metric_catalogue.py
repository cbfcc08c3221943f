"""The catalogue of what the agent exports is read from the real registry, every metric in it."""

from __future__ import annotations

from watcher.report.metric_catalogue import catalogue, exported_series
from watcher.report.metrics import Metrics


def test_every_metric_of_the_registry_is_in_the_catalogue_with_its_labels() -> None:
    families = {family.name for family in Metrics().registry.collect()}
    entries = {entry.name: entry for entry in catalogue()}
    assert set(entries) == families
    assert entries["minimax_watcher_uploads"].labels == ("account", "result")
    assert entries["minimax_watcher_files"].labels == ("folder", "state")
    assert entries["minimax_watcher_hook_runs"].labels == ("hook", "result")
    assert entries["minimax_watcher_video_seconds"].labels == ()  # `le` belongs to the buckets
    assert entries["minimax_watcher_uploads"].kind == "counter"
    assert "Upload attempts" in entries["minimax_watcher_uploads"].help


def test_the_agents_own_metrics_come_first() -> None:
    owns = [entry.own for entry in catalogue()]
    assert owns == sorted(owns, reverse=True) and owns[0] and not owns[-1]


def test_the_series_are_the_names_prometheus_stores() -> None:
    series = exported_series()
    assert {
        "minimax_watcher_uploads_total",
        "minimax_watcher_video_seconds_bucket",
        "minimax_watcher_video_seconds_sum",
        "minimax_watcher_video_seconds_count",
        "minimax_watcher_files",
        "process_resident_memory_bytes",
    } <= series
    assert "minimax_watcher_uploads" not in series  # a counter is queried by its _total

"""What the agent exports to Prometheus, read from a real `Metrics` registry: each metric's name, kind,
labels and help, for `minimax-watcher help metrics` and the check of contrib/grafana-dashboard.json."""

from __future__ import annotations

from dataclasses import dataclass

from watcher.report.metrics import Metrics

OWN_PREFIX = "minimax_watcher_"
# Labels prometheus_client adds to a histogram's buckets: part of the series, not of what is counted.
_BUCKET_LABELS = {"le"}


@dataclass(frozen=True)
class MetricEntry:
    name: str  # the family's name: a counter's without its `_total`
    kind: str  # counter, gauge, histogram
    help: str
    labels: tuple[str, ...]
    series: tuple[str, ...]  # the names Prometheus stores and queries name: x_total, x_bucket, ...

    @property
    def own(self) -> bool:
        """The agent's own metric, not one of prometheus_client's standard process_* and python_*."""
        return self.name.startswith(OWN_PREFIX)


def catalogue() -> list[MetricEntry]:
    """Every metric a running agent serves, its own first: a fresh `Metrics`, each method called once.

    A labelled metric has no series before its first value, so each is given one here; a metric that
    still has none raises, rather than leave it out of the help and the dashboard's check.
    """
    metrics = Metrics()
    _give_every_metric_a_value(metrics)
    entries = []
    for family in metrics.registry.collect():
        if not family.samples:
            raise RuntimeError(f"{family.name} has no series: give it a value in metric_catalogue")
        labels = dict.fromkeys(
            label for s in family.samples for label in s.labels if label not in _BUCKET_LABELS
        )
        series = dict.fromkeys(s.name for s in family.samples)
        entries.append(
            MetricEntry(family.name, family.type, family.documentation, tuple(labels), tuple(series))
        )
    return sorted(entries, key=lambda e: not e.own)  # stable: each group keeps the registry's order


def exported_series() -> set[str]:
    """Every series name a query may name: `minimax_watcher_uploads_total`, `..._bucket`, `process_...`."""
    return {name for entry in catalogue() for name in entry.series}


def _give_every_metric_a_value(metrics: Metrics) -> None:
    account, folder = "123456", "/srv/drop/alice"
    metrics.upload_finished(account, "success", size=1, seconds=1.0)
    metrics.set_files(folder, pending=1, failed=1)
    metrics.set_folder_lock(folder, standing_by=True, blocked=False)
    metrics.set_paused(account, paused=False)
    metrics.hook_run("on_upload", ok=True)
    metrics.video_finished(account, "completed", seconds=1.0)
    metrics.set_videos_in_flight(account, 1)

"""`watcher.report.metrics`: what the agent reports, read back the way Prometheus reads it, over real HTTP."""

from __future__ import annotations

import errno
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from watcher.config.load import ConfigError
from watcher.report.metrics import (
    DURATION_BUCKETS,
    Metrics,
    MetricsSink,
    NullMetrics,
    SandboxedProcessCollector,
)

# Proxy variables in the environment must not route a loopback scrape elsewhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(listen: str) -> dict[str, list[Sample]]:
    """Every sample served at http://`listen`/metrics, by family name, as Prometheus' parser reads them."""
    with _OPENER.open(f"http://{listen}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(families: dict[str, list[Sample]], family: str, sample: str, **labels: str) -> float:
    matches = [s.value for s in families[family] if s.name == sample and s.labels == labels]
    assert len(matches) == 1, f"{sample}{labels}: {matches} in {families[family]}"
    return matches[0]


def refused(listen: str) -> bool:
    try:
        _OPENER.open(f"http://{listen}/metrics", timeout=5).close()
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    return False


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    yield m
    m.close()


@pytest.fixture
def served(metrics: Metrics) -> Iterator[str]:
    listen = f"127.0.0.1:{free_port()}"
    metrics.set_listen(listen)
    yield listen


def test_scraped_counts_are_what_was_reported(metrics: Metrics, served: str) -> None:
    for size, seconds in ((1000, 0.2), (3000, 4.0), (500, 45.0)):
        metrics.upload_finished("123456", "success", size=size, seconds=seconds)
    metrics.upload_finished("123456", "reused", size=7000)
    metrics.upload_finished("123456", "temporary", size=800, seconds=30)
    metrics.upload_finished("123456", "temporary", size=800, seconds=30)
    metrics.upload_finished("654321", "permanent", size=9, seconds=0.1)
    metrics.upload_finished("654321", "account")
    metrics.upload_finished("", "success", size=64, seconds=0.04)
    metrics.set_paused("654321", True)
    metrics.set_paused("123456", False)
    metrics.set_files("/srv/drop/alice", pending=12, failed=3)
    metrics.set_files("/srv/drop/bob", pending=0, failed=1)

    got = scrape(served)

    uploads = "minimax_watcher_uploads"
    expected = {
        ("123456", "success"): 3,
        ("123456", "reused"): 1,
        ("123456", "temporary"): 2,
        ("123456", "permanent"): 0,
        ("123456", "account"): 0,
        ("654321", "success"): 0,
        ("654321", "permanent"): 1,
        ("654321", "account"): 1,
        ("default", "success"): 1,
        ("default", "temporary"): 0,
    }
    for (account, result), count in expected.items():
        assert value(got, uploads, f"{uploads}_total", account=account, result=result) == count
    # Only what was sent counts: reused bytes were not, failed attempts did not upload a file.
    sent = "minimax_watcher_uploaded_bytes"
    assert value(got, sent, f"{sent}_total", account="123456") == 4500
    assert value(got, sent, f"{sent}_total", account="654321") == 0
    assert value(got, sent, f"{sent}_total", account="default") == 64

    duration = "minimax_watcher_upload_duration_seconds"
    assert value(got, duration, f"{duration}_count") == 4
    assert value(got, duration, f"{duration}_sum") == pytest.approx(0.2 + 4.0 + 45.0 + 0.04)
    assert value(got, duration, f"{duration}_bucket", le="0.05") == 1
    assert value(got, duration, f"{duration}_bucket", le="5.0") == 3
    assert value(got, duration, f"{duration}_bucket", le="60.0") == 4
    assert value(got, duration, f"{duration}_bucket", le="+Inf") == 4
    buckets = {s.labels["le"] for s in got[duration] if s.name.endswith("_bucket")}
    assert buckets == {str(float(b)) for b in DURATION_BUCKETS} | {"+Inf"}

    paused = "minimax_watcher_account_paused"
    assert value(got, paused, paused, account="654321") == 1
    assert value(got, paused, paused, account="123456") == 0
    assert value(got, paused, paused, account="default") == 0

    files = "minimax_watcher_files"
    assert value(got, files, files, folder="/srv/drop/alice", state="pending") == 12
    assert value(got, files, files, folder="/srv/drop/alice", state="failed") == 3
    assert value(got, files, files, folder="/srv/drop/bob", state="pending") == 0
    assert value(got, files, files, folder="/srv/drop/bob", state="failed") == 1


def test_an_account_is_exported_at_zero_before_anything_happens_to_it(metrics: Metrics, served: str) -> None:
    """So that `increase()` in an alert sees the first failure, not a series born at 1."""
    metrics.track_account("123456")
    got = scrape(served)
    uploads = "minimax_watcher_uploads"
    results = {s.labels["result"]: s.value for s in got[uploads] if s.name == f"{uploads}_total"}
    assert results == {"success": 0, "reused": 0, "temporary": 0, "permanent": 0, "account": 0}
    assert (
        value(got, "minimax_watcher_account_paused", "minimax_watcher_account_paused", account="123456") == 0
    )


def test_hook_runs_are_exported_without_samples_until_a_hook_runs(metrics: Metrics, served: str) -> None:
    hooks = "minimax_watcher_hook_runs"
    assert scrape(served)[hooks] == []

    metrics.track_hook("on_failure")
    metrics.hook_run("on_upload", ok=True)
    metrics.hook_run("on_upload", ok=True)
    metrics.hook_run("on_upload", ok=False)
    got = scrape(served)
    assert value(got, hooks, f"{hooks}_total", hook="on_upload", result="ok") == 2
    assert value(got, hooks, f"{hooks}_total", hook="on_upload", result="failed") == 1
    assert value(got, hooks, f"{hooks}_total", hook="on_failure", result="failed") == 0
    assert not [s for s in got[hooks] if s.labels.get("hook") == "on_attention"]


def test_folders_and_accounts_no_longer_configured_are_forgotten(metrics: Metrics, served: str) -> None:
    metrics.set_files("/srv/drop/alice", pending=2, failed=0)
    metrics.set_files("/srv/drop/bob", pending=5, failed=1)
    metrics.set_paused("654321", True)
    metrics.upload_finished("654321", "account")

    metrics.forget_folder("/srv/drop/bob")
    metrics.forget_account("654321")
    metrics.forget_folder("/never/watched")
    metrics.forget_account("000000")

    got = scrape(served)
    assert {s.labels["folder"] for s in got["minimax_watcher_files"]} == {"/srv/drop/alice"}
    # A stale paused=1 would alert forever; the counter goes on counting what happened.
    assert got["minimax_watcher_account_paused"] == []
    uploads = "minimax_watcher_uploads"
    assert value(got, uploads, f"{uploads}_total", account="654321", result="account") == 1


def test_a_folder_standing_by_or_blocked_is_a_gauge_until_it_is_no_longer_configured(
    metrics: Metrics, served: str
) -> None:
    metrics.set_folder_lock("/srv/drop/alice", standing_by=True, blocked=False)
    metrics.set_folder_lock("/srv/drop/bob", standing_by=False, blocked=True)
    metrics.set_folder_lock("/srv/drop/carol", standing_by=False, blocked=False)
    metrics.forget_folder_lock("/srv/drop/carol")
    got = scrape(served)
    standing, blocked = "minimax_watcher_folder_standing_by", "minimax_watcher_folder_lock_blocked"
    assert {s.labels["folder"]: s.value for s in got[standing]} == {"/srv/drop/alice": 1, "/srv/drop/bob": 0}
    assert {s.labels["folder"]: s.value for s in got[blocked]} == {"/srv/drop/alice": 0, "/srv/drop/bob": 1}


def test_the_standard_process_metrics_are_served(served: str) -> None:
    got = scrape(served)
    for family in (
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_collections",
    ):
        assert got.get(family), f"{family} is not served"
    assert value(got, "process_open_fds", "process_open_fds") > 0


def test_process_metrics_where_proc_stat_is_hidden(tmp_path: Path) -> None:
    """The unit's ProcSubset=pid leaves /proc/self and hides /proc/stat, which the stock collector needs."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").symlink_to(f"/proc/{os.getpid()}")
    stock, ours = CollectorRegistry(), CollectorRegistry()
    ProcessCollector(proc=str(proc), registry=stock)
    SandboxedProcessCollector(proc=str(proc), registry=ours)
    assert b"process_" not in generate_latest(stock)  # what would be served without the fallback

    got = {f.name: f.samples for f in text_string_to_metric_families(generate_latest(ours).decode())}
    started = value(got, "process_start_time_seconds", "process_start_time_seconds")
    assert time.time() - 24 * 3600 * 365 < started <= time.time()
    real = CollectorRegistry()
    ProcessCollector(registry=real)  # where /proc/stat is there, as on this test's machine
    expected = real.get_sample_value("process_start_time_seconds")
    assert expected is not None and abs(started - expected) < 2
    assert value(got, "process_open_fds", "process_open_fds") > 0
    assert value(got, "process_resident_memory_bytes", "process_resident_memory_bytes") > 0


def test_two_metrics_objects_share_nothing() -> None:
    first, second = Metrics(), Metrics()
    first_listen, second_listen = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    try:
        first.set_listen(first_listen)
        second.set_listen(second_listen)
        first.upload_finished("123456", "success", size=10, seconds=1)
        first.set_files("/srv/drop/alice", pending=1, failed=0)

        assert first.registry is not second.registry
        got = scrape(second_listen)
        assert got["minimax_watcher_uploads"] == []
        assert got["minimax_watcher_files"] == []
        assert (
            value(
                got,
                "minimax_watcher_upload_duration_seconds",
                "minimax_watcher_upload_duration_seconds_count",
            )
            == 0
        )
        uploads = "minimax_watcher_uploads"
        assert (
            value(scrape(first_listen), uploads, f"{uploads}_total", account="123456", result="success") == 1
        )
    finally:
        first.close()
        second.close()


def test_serve_stop_and_serve_again_on_the_same_port(metrics: Metrics) -> None:
    listen = f"127.0.0.1:{free_port()}"
    metrics.upload_finished("123456", "success", size=1, seconds=1)
    for _ in range(3):
        stop = metrics.serve(listen)
        uploads = "minimax_watcher_uploads"
        assert value(scrape(listen), uploads, f"{uploads}_total", account="123456", result="success") == 1
        stop()
        assert refused(listen)
        stop()  # a second call is harmless


def test_a_port_in_use_is_a_config_error_naming_the_key(metrics: Metrics) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigError, match=r"^metrics\.listen: cannot listen on .*: the port is in use"):
            metrics.serve(listen)


def test_an_address_not_on_this_machine_is_a_config_error(metrics: Metrics) -> None:
    # 192.0.2.0/24 is TEST-NET-1: documentation only, on no interface.
    with pytest.raises(
        ConfigError, match=r"^metrics\.listen: .*no interface of this machine has that address"
    ):
        metrics.serve("192.0.2.1:9464")


@pytest.mark.parametrize(
    "listen",
    [
        "9464",
        ":9464",
        "localhost:9464",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:94 64",
        "127.0.0.1:٩٤٦٤",  # Arabic-Indic digits: isdigit() says yes, a port they are not
        "::1:9464",
        "[127.0.0.1]:9464",
        "[::1:9464",
        "256.0.0.1:9464",
    ],
)
def test_a_malformed_listen_is_refused_before_anything_is_bound(metrics: Metrics, listen: str) -> None:
    with pytest.raises(ConfigError, match=r"^metrics\.listen: "):
        metrics.serve(listen)
    with pytest.raises(ConfigError, match=r"^metrics\.listen: "):
        metrics.set_listen(listen)
    assert metrics._listen is None


def test_a_reload_moves_the_server_and_keeps_the_counts(metrics: Metrics) -> None:
    first, second = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    metrics.set_listen(first)
    metrics.upload_finished("123456", "success", size=1, seconds=1)

    metrics.set_listen(first)  # unchanged: the same server goes on
    metrics.set_listen(second)
    assert metrics._listen == second
    assert refused(first)
    uploads = "minimax_watcher_uploads"
    assert value(scrape(second), uploads, f"{uploads}_total", account="123456", result="success") == 1

    # The same port on another address: the old server lets go of it first.
    port = second.rsplit(":", 1)[1]
    everywhere = f"0.0.0.0:{port}"
    metrics.set_listen(everywhere)
    assert metrics._listen == everywhere
    assert (
        value(scrape(f"127.0.0.1:{port}"), uploads, f"{uploads}_total", account="123456", result="success")
        == 1
    )

    metrics.set_listen(None)
    assert metrics._listen is None
    assert refused(f"127.0.0.1:{port}")


def test_a_reload_to_an_address_it_cannot_serve_keeps_the_old_server(metrics: Metrics, served: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="in use"):
            metrics.set_listen(f"127.0.0.1:{taken.getsockname()[1]}")
    assert metrics._listen == served
    assert scrape(served)["process_start_time_seconds"]


def test_ipv6_loopback(metrics: Metrics) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError as exc:
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            pytest.skip(f"no IPv6 loopback here: {exc.strerror}")
        raise
    listen = f"[::1]:{port}"
    metrics.set_listen(listen)
    assert scrape(listen)["process_start_time_seconds"]


def test_unknown_results_and_hooks_are_refused(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="unknown upload result"):
        metrics.upload_finished("123456", "ok")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown hook"):
        metrics.hook_run("on_success", ok=True)  # type: ignore[arg-type]


def test_null_metrics_takes_every_call_and_serves_nothing() -> None:
    null: MetricsSink = NullMetrics()
    real: MetricsSink = Metrics()
    for sink in (null, real):
        sink.track_account("123456")
        sink.upload_finished("123456", "success", size=1, seconds=0.5)
        sink.set_files("/srv/drop/alice", pending=1, failed=0)
        sink.forget_folder("/srv/drop/alice")
        sink.set_folder_lock("/srv/drop/alice", standing_by=True, blocked=False)
        sink.forget_folder_lock("/srv/drop/alice")
        sink.set_paused("", True)
        sink.forget_account("")
        sink.track_hook("on_upload")
        sink.hook_run("on_upload", ok=False)
        sink.close()
    listen = f"127.0.0.1:{free_port()}"
    null.set_listen(listen)
    assert refused(listen)

"""What an operator sees without reading the log: metrics over real HTTP, and a live `status` from a
second process while the agent uploads and an account is paused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, error_record_of, status_report, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator, Fault


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def status_command(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, USEAPI_TOKEN=TOKEN, XDG_STATE_HOME=str(agent.workdir / "state"))
    return subprocess.run(
        [sys.executable, "-m", "watcher", "status", *args, "--config", str(agent.config_path)],
        env=env,
        capture_output=True,
        timeout=60,
    )


def status_of(agent: AgentProcess) -> dict[str, Any]:
    return status_report(status_command(agent, "--json"))  # its exit status checked against it


def test_metrics_scraped_over_http_count_what_happened(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    port = free_port()
    emulator.add_fault(Fault("status", status=402, times=-1, account=ACCOUNT_B))
    start_agent(
        [{"path": str(drop), "account": ACCOUNT_A}, {"path": str(other), "account": ACCOUNT_B}],
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    (drop / "one.png").write_bytes(png_bytes(4001))
    wait_sidecar(drop / "one.png")
    (drop / "same.png").write_bytes(png_bytes(4001))  # identical bytes: the fileID is reused
    (drop / "two.png").write_bytes(png_bytes(4002))
    (drop / "text.png").write_text("not an image")
    (other / "refused.png").write_bytes(png_bytes(4003))
    for name in ("same.png", "two.png"):
        wait_sidecar(drop / name)
    wait_for(lambda: error_record_of(drop / "text.png").exists(), 15, "the error record")

    def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = scrape(port)
        paused = samples.get(("minimax_watcher_account_paused", (("account", ACCOUNT_B),)))
        return samples if paused == 1 else None

    samples = wait_for(settled, 20, "account B to show as paused")

    def count(result: str, account: str = ACCOUNT_A) -> float:
        return samples.get(("minimax_watcher_uploads_total", (("account", account), ("result", result))), 0)

    assert count("success") == 2
    assert count("reused") == 1
    assert count("permanent") == 1
    assert count("account", ACCOUNT_B) >= 1
    assert samples[("minimax_watcher_account_paused", (("account", ACCOUNT_A),))] == 0
    sent = samples[("minimax_watcher_uploaded_bytes_total", (("account", ACCOUNT_A),))]
    assert sent == len(png_bytes(4001)) + len(png_bytes(4002))
    failed = samples[("minimax_watcher_files", (("folder", str(drop)), ("state", "failed")))]
    assert failed == 1
    assert samples[("minimax_watcher_files", (("folder", str(other)), ("state", "pending")))] == 1
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)


def test_live_status_shows_a_paused_account_and_an_upload_in_flight(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    emulator.add_fault(Fault("status", status=402, times=-1, account=ACCOUNT_B))
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A}, {"path": str(other), "account": ACCOUNT_B}]
    )
    (other / "refused.png").write_bytes(png_bytes(4101))
    wait_for(lambda: "Uploads for this account are paused" in agent.log(), 20, "account B paused")
    emulator.add_fault(Fault("slow", delay=4.0, account=ACCOUNT_A))
    big = png_bytes(4102)
    (drop / "held.png").write_bytes(big)
    emulator.wait_for_held(1, timeout=20)

    def live() -> dict[str, Any] | None:
        report = status_of(agent)
        uploading = report.get("agent", {}).get("uploading", [])
        return report if uploading else None

    report = wait_for(live, 10, "the upload in flight in `status --json`", interval=0.3)
    state = report["agent"]
    assert state["pid"] == agent.proc.pid if agent.proc else False
    assert [u["file"] for u in state["uploading"]] == [str(drop / "held.png")]
    assert state["uploading"][0]["size"] == len(big) and state["uploading"][0]["sent"] == len(big)
    accounts = {a["account"]: a for a in state["accounts"]}
    assert accounts[ACCOUNT_B]["state"] == "paused" and "402" in accounts[ACCOUNT_B]["reason"]
    assert accounts[ACCOUNT_B]["next_probe"] and accounts[ACCOUNT_A]["state"] == "ok"
    text = status_command(agent)  # a paused account needs attention: exit 1, and the line says why
    assert text.returncode == 1, text.stderr
    assert f"needs attention: account={ACCOUNT_B} paused".encode() in text.stdout
    wait_sidecar(drop / "held.png")


def test_a_dead_agents_status_file_is_not_shown_as_live(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    agent = AgentProcess(tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}])
    agent.start()
    try:
        (drop / "a.png").write_bytes(png_bytes(4201))
        wait_sidecar(drop / "a.png")
        wait_for(lambda: (tmp_path / "state" / "minimax-watcher" / "agent-status.json").exists(), 10,
                 "the live status file")  # fmt: skip
        assert "agent" in status_of(agent)
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait()
        assert (tmp_path / "state" / "minimax-watcher" / "agent-status.json").exists()  # stale, left
        assert "agent" not in status_of(agent)
    finally:
        agent.stop()  # killed: only reaped, its notify socket closed

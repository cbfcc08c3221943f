"""`minimax-watcher status` as data and as text: each folder's counts and failures read from real files,
a running agent's live status joined only to the folders it watches, and nothing a name or an error text
holds ever reaching the terminal raw."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ACCOUNT_A
from tests.helpers.images import png_bytes
from watcher.cli.status import MAX_SHOWN, needs_attention, printable, render_json, render_text
from watcher.config.load import load_config
from watcher.core.signature import signature_of
from watcher.disk.records import build_error_record, build_sidecar
from watcher.report.status_report import add_agent, folder_report

AGENT = {
    "pid": 4242,
    "since": "2026-12-07T10:00:00Z",
    "accounts": [
        {"account": ACCOUNT_A, "state": "ok", "reason": None, "next_probe": None},
        {"account": "222", "state": "paused", "reason": "402 expired", "next_probe": "2026-12-07T11:00:00Z"},
    ],
    "uploading": [{"file": "/d/big.png", "sent": 1_500_000, "size": 3_000_000}],
    "standing_by": [{"folder": "/s", "held_by": "host h, pid 1"}, "/old"],
    "lock_blocked": [{"folder": "/b", "problem": "a planted file"}],
    "folders": [],
}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain name.png", "plain name.png"),
        ("evil\x1b[2J.png", "evil\\x1b[2J.png"),
        ("tab\there\x7f", "tab\\x09here\\x7f"),
        ("c1\x9b", "c1\\x9b"),
        (os.fsdecode(b"caf\xe9.png"), "caf\\xe9.png"),
        ("gpj.\u202eexe", "gpj.\\u202eexe"),
        ("line\u2028sep\x85", "line\\u2028sep\\x85"),
        ("café ünïcode", "café ünïcode"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_cuts_at_the_limit() -> None:
    assert printable("x" * 10, 4) == "xxxx…"
    assert printable("x" * 4, 4) == "xxxx"


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    """A folder with a done image, a pending one, a failed one and one whose name leaves no room."""
    folder = tmp_path / "drop"
    folder.mkdir()
    done = folder / "done.png"
    done.write_bytes(png_bytes(1))
    signature = signature_of(os.stat(done))
    sidecar = build_sidecar(image_path=str(done), account=ACCOUNT_A, file_id=f"user:1-minimax:{ACCOUNT_A}-file:1",
                            oss_path="oss/1", signature=signature, sha256="0" * 64, content_type="image/png")  # fmt: skip
    (folder / "done.png.json").write_text(json.dumps(sidecar))
    (folder / "pending.png").write_bytes(png_bytes(2))
    failed = folder / "failed.png"
    failed.write_bytes(png_bytes(3))
    record = build_error_record(
        error="bad\x1b[31m image", code=400, attempts=1, signature=signature_of(os.stat(failed))
    )
    (folder / "failed.png.error.json").write_text(json.dumps(record))
    (folder / ("n" * 250 + ".png")).write_bytes(png_bytes(4))
    return folder


def report_of(drop: Path) -> dict[str, Any]:
    config_file = drop.parent / "config.yaml"
    config_file.write_text(yaml.safe_dump({"folders": [{"path": str(drop), "account": ACCOUNT_A}]}))
    return folder_report(load_config(config_file))


def test_each_folder_is_counted_from_its_files_with_its_failures(drop: Path) -> None:
    (folder,) = report_of(drop)["folders"]
    assert (folder["path"], folder["account"]) == (str(drop), ACCOUNT_A)
    assert (folder["uploaded"], folder["pending"], folder["failed"]) == (1, 1, 2)
    failed, too_long = folder["failures"]
    assert failed == {"file": "failed.png", "error": "bad\x1b[31m image"}
    assert too_long["file"] == "n" * 250 + ".png" and "the file name is 254 bytes" in too_long["error"]


def test_the_text_shows_the_counts_and_failures_escaped_and_that_no_agent_runs(drop: Path) -> None:
    report = report_of(drop)
    add_agent(report, None)
    text = render_text(report)
    assert "\x1b" not in text
    assert f"{drop}  (account={ACCOUNT_A})\n  uploaded 1, pending 1, failed 2" in text
    assert "  failed: failed.png: bad\\x1b[31m image" in text
    assert text.endswith("agent: not running on this state folder (counts above are read from the disk)")
    assert report["folders"][0]["watched"] is False and "agent" not in report


def test_a_running_agent_is_shown_with_its_accounts_uploads_and_locks(drop: Path) -> None:
    report = report_of(drop)
    add_agent(report, {**AGENT, "folders": [str(drop), "/elsewhere"]})
    assert report["folders"][0]["watched"] is True and report["agent"]["pid"] == 4242
    lines = render_text(report).splitlines()
    at = lines.index("agent: running, pid 4242, since 2026-12-07T10:00:00Z")
    assert lines[at + 1 :] == [
        f"  account={ACCOUNT_A}: ok",
        "  account=222: paused (402 expired; next probe 2026-12-07T11:00:00Z)",
        "  uploading /d/big.png: 1.5 MB of 3.0 MB",
        "  /s: standing by (held by host h, pid 1)",
        "  /old: standing by (held by another agent)",
        "  /b: not held, nothing uploads: a planted file",
    ]


def test_an_agent_running_another_config_is_not_called_this_ones(drop: Path) -> None:
    report = report_of(drop)
    add_agent(report, {**AGENT, "folders": ["/b", "/a"]})
    assert "agent" not in report and report["other_agent"] == {"pid": 4242, "folders": ["/a", "/b"]}
    assert report["folders"][0]["watched"] is False
    assert render_text(report).endswith(
        "agent: not running for these folders; the agent on this state folder (pid 4242) runs another "
        "config (counts above are read from the disk)"
    )


def test_a_folder_the_running_agent_does_not_watch_says_so(drop: Path) -> None:
    report = report_of(drop)
    report["folders"].append({**report["folders"][0], "path": "/unwatched", "failures": []})
    add_agent(report, {**AGENT, "folders": [str(drop)]})
    text = render_text(report)
    assert text.count("not watched: the running agent's config does not list this folder") == 1
    assert text.index("/unwatched") < text.index("not watched")


def test_a_long_reason_is_cut_on_the_terminal(drop: Path) -> None:
    report = report_of(drop)
    long = "r" * (MAX_SHOWN + 50)
    add_agent(
        report,
        {**AGENT, "accounts": [{"account": "1", "state": "held", "reason": long}], "folders": [str(drop)]},
    )
    assert f"  account=1: held ({'r' * MAX_SHOWN}…; next probe None)" in render_text(report).splitlines()


def test_json_is_utf8_and_falls_back_to_escapes_for_a_name_that_is_not() -> None:
    assert json.loads(render_json({"name": "café"})) == {"name": "café"}
    assert "café".encode() in render_json({"name": "café"})
    odd = os.fsdecode(b"caf\xe9.png")
    shown = render_json({"name": odd})
    assert shown.isascii() and json.loads(shown) == {"name": odd}


def test_nothing_needs_attention_in_a_folder_of_uploaded_and_pending_files(drop: Path) -> None:
    for name in ("failed.png", "failed.png.error.json", "n" * 250 + ".png"):
        (drop / name).unlink()
    report = report_of(drop)
    add_agent(
        report, {**AGENT, "accounts": AGENT["accounts"][:1], "lock_blocked": [], "folders": [str(drop)]}
    )
    assert "agent" in report and needs_attention(report) == []
    add_agent(report, {**AGENT, "folders": [str(drop)]})  # the same with a paused account
    assert needs_attention(report) == ["account=222 paused", "1 folder not held (lock name taken)"]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda r: r["folders"][0].update(failed=2), "2 failed files"),
        (lambda r: r["folders"][0].update(videos={"failed": 1, "unknown": 0}), "1 video failed"),
        (lambda r: r["folders"][0].update(videos={"failed": 0, "unknown": 3}), "3 videos unknown"),
        (lambda r: r.update(agent=AGENT), "account=222 paused"),
        (lambda r: r.update(agent={**AGENT, "accounts": []}), "1 folder not held (lock name taken)"),
        (
            lambda r: r.update(video_accounts=[{"account": "9", "paused_until": "x"}]),
            "videos of account=9 paused",
        ),
    ],
)
def test_each_thing_that_needs_attention_is_named(change: Any, said: str) -> None:
    report: dict[str, Any] = {"folders": [{"path": "/d", "failed": 0, "failures": []}]}
    change(report)
    assert said in needs_attention(report)


def test_failures_moved_to_failed_dir_are_counted_and_listed_with_their_reason(drop: Path) -> None:
    moved = drop / "failed" / "sub" / "gone.png"
    moved.parent.mkdir(parents=True)
    moved.write_bytes(png_bytes(5))
    record = build_error_record(
        error="HTTP 400: refused", code=400, attempts=1, signature=signature_of(os.stat(moved))
    )
    (moved.parent / "gone.png.error.json").write_text(json.dumps(record))
    config_file = drop.parent / "config.yaml"
    folder = {"path": str(drop), "account": ACCOUNT_A, "failed_dir": "failed"}
    config_file.write_text(yaml.safe_dump({"folders": [folder]}))
    (entry,) = folder_report(load_config(config_file))["folders"]
    assert entry["failed"] == 3  # failed.png, the name too long, and the one in failed/
    assert {"file": "failed/sub/gone.png", "error": "HTTP 400: refused", "moved": True} in entry["failures"]
    assert (
        "  failed: failed/sub/gone.png: HTTP 400: refused" in render_text({"folders": [entry]}).splitlines()
    )


def test_accounts_are_named_as_the_log_lines_name_them() -> None:
    """A folder without `account` and the agent's "default" key are both the token's only account."""
    report: dict[str, Any] = {
        "folders": [{"path": "/d", "account": None, "uploaded": 0, "pending": 0, "failed": 0, "failures": []}],
        "agent": {"pid": 1, "since": "s", "accounts": [{"account": "default", "state": "paused", "reason": "r"}]},
        "video_accounts": [
            {"account": None, "today": 1, "cap": 5, "in_flight": 0, "max_jobs": 2, "paused_until": "2026-12-07T11:00:00Z",
             "pause_reason": "r"},
        ],
    }  # fmt: skip
    lines = render_text(report).splitlines()
    assert lines[0] == "/d  (the token's only account)"
    assert lines[2].startswith("videos, the token's only account: 1 of 5 today (UTC)")
    assert "  the token's only account: paused (r; next probe None)" in lines
    assert needs_attention(report) == [
        "the token's only account paused",
        "videos of the token's only account paused",
    ]

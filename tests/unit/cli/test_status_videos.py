"""`status` for folders with `generate`: each folder's videos and each account's day and slots, from
`VideoSummary` values built here (the journal's reading is `watcher.state.videos`'); folders without
`generate` are shown as before."""

from __future__ import annotations

import calendar
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ACCOUNT_A, ACCOUNT_B
from watcher.cli.status import render_json, render_text
from watcher.config.load import Config, load_config
from watcher.core.video import AccountVideos, FolderVideos, VideoSummary
from watcher.report.status_report import add_agent, add_videos, folder_report

PAUSED_UNTIL = calendar.timegm((2026, 12, 7, 23, 4, 0))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    folders: list[dict[str, Any]] = []
    for name, account, generate in (
        ("shots", ACCOUNT_A, {"model": "I2V-2.3"}),
        ("more", ACCOUNT_A, {"model": "I2V-2.3", "max_per_day": 5}),
        ("plain", ACCOUNT_B, None),
        ("solo", None, {"model": "m"}),
    ):
        (tmp_path / name).mkdir()
        folder: dict[str, Any] = {"path": str(tmp_path / name)}
        if account is not None:
            folder["account"] = account
        if generate is not None:
            folder["generate"] = generate
        folders.append(folder)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"folders": folders}))
    return load_config(path)


def summary_for(tmp_path: Path) -> VideoSummary:
    return VideoSummary(
        folders={
            str(tmp_path / "shots"): FolderVideos(
                queued=3,
                generating=2,
                done=4,
                failed=1,
                unknown=1,
                in_progress=(("a.png", 40), ("sub/b.png", 5)),
            ),
        },
        accounts={
            ACCOUNT_A: AccountVideos(today=5, cap=5, in_flight=2, max_jobs=2),
            "": AccountVideos(
                today=1,
                cap=50,
                in_flight=0,
                max_jobs=2,
                paused_until=PAUSED_UNTIL,
                pause_reason="no credits\x1b[2J",
            ),
        },
    )


def test_each_generate_folder_gets_its_videos_and_the_others_stay_as_they_were(
    tmp_path: Path, config: Config
) -> None:
    report = folder_report(config)
    before = json.loads(json.dumps(report))
    add_videos(report, summary_for(tmp_path), config.folders)
    shots, more, plain, solo = report["folders"]
    assert shots["videos"] == {
        "queued": 3,
        "generating": 2,
        "done": 4,
        "failed": 1,
        "unknown": 1,
        "in_progress": [{"file": "a.png", "percent": 40}, {"file": "sub/b.png", "percent": 5}],
        "recent": [],
    }
    zero = {
        "queued": 0,
        "generating": 0,
        "done": 0,
        "failed": 0,
        "unknown": 0,
        "in_progress": [],
        "recent": [],
    }
    assert more["videos"] == zero and solo["videos"] == zero  # nothing in the journal for them yet
    assert plain == before["folders"][2]  # no generate: unchanged, no "videos" key
    assert report["video_accounts"] == [
        {
            "account": None,
            "today": 1,
            "cap": 50,
            "in_flight": 0,
            "max_jobs": 2,
            "paused_until": "2026-12-07T23:04:00Z",
            "pause_reason": "no credits\x1b[2J",
        },
        {
            "account": ACCOUNT_A,
            "today": 5,
            "cap": 5,
            "in_flight": 2,
            "max_jobs": 2,
            "paused_until": None,
            "pause_reason": None,
        },
    ]
    assert json.loads(render_json(report)) == report


def test_the_text_shows_videos_percent_the_day_against_the_cap_and_a_pause(
    tmp_path: Path, config: Config
) -> None:
    report = folder_report(config)
    add_videos(report, summary_for(tmp_path), config.folders)
    add_agent(report, None)
    text = render_text(report)
    assert "\x1b" not in text
    assert (
        f"{tmp_path / 'shots'}  (account={ACCOUNT_A})\n"
        "  uploaded 0, pending 0, failed 0\n"
        "  videos: queued 3, generating 2, done 4, failed 1, unknown 1\n"
        "    generating a.png: 40%\n"
        "    generating sub/b.png: 5%\n"
        "    to take the failed and unknown ones again: minimax-watcher retry --failed\n"
    ) in text
    assert (
        f"{tmp_path / 'plain'}  (account={ACCOUNT_B})\n  uploaded 0, pending 0, failed 0\n{tmp_path / 'solo'}"
        in text
    )
    assert (
        f"videos, account={ACCOUNT_A}: 5 of 5 today (UTC), 2 of 2 in flight; the day's cap is reached: "
        "no new videos until 00:00 UTC\n"
    ) in text
    assert (
        "videos, the token's only account: 1 of 50 today (UTC), 0 of 2 in flight; "
        "paused until 2026-12-07 23:04:00 UTC: no credits\\x1b[2J\n"
    ) in text


def test_a_config_without_generate_gets_no_video_keys(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"folders": [{"path": str(tmp_path / "d")}]}))
    config = load_config(path)
    report = folder_report(config)
    add_videos(report, VideoSummary(folders={}, accounts={}), config.folders)
    assert "video_accounts" not in report and "videos" not in report["folders"][0]
    assert "videos" not in render_text(report)


@pytest.mark.hostile
def test_a_long_list_in_progress_is_cut_and_names_are_escaped(tmp_path: Path, config: Config) -> None:
    many = tuple((f"evil\x1b]0;{i}\x07.png", i) for i in range(30))
    summary = VideoSummary(
        folders={str(tmp_path / "shots"): FolderVideos(generating=30, in_progress=many)}, accounts={}
    )
    report = folder_report(config)
    add_videos(report, summary, config.folders)
    text = render_text(report)
    assert "\x1b" not in text and "\x07" not in text
    assert text.count("    generating evil\\x1b]0;") == 20 and "    ... and 10 more generating" in text


def test_a_folder_without_account_shows_the_account_its_videos_were_made_for(
    tmp_path: Path, config: Config
) -> None:
    """A folder without `account` offers each image under its sidecar's account (the fileID's): the day's
    count and a pause are journalled under that account, and `status` shows them, not an empty line."""
    from watcher.report.status_report import utc_day
    from watcher.state.videos import DayCount, Pause, count_key, pause_key, summarize, video_journal

    state, today = tmp_path / "state", utc_day()
    state.mkdir()
    journal = video_journal(state)
    journal.add(count_key("777", today), DayCount("777", today, 3), sync=True)
    journal.add(pause_key("777"), Pause("777", 4_000_000_000.0, "no credits"), sync=True)
    journal.close()
    report = folder_report(config)
    add_videos(report, summarize(state, config.folders, today), config.folders)
    shown = {a["account"]: (a["today"], a["cap"], a["pause_reason"]) for a in report["video_accounts"]}
    assert shown == {"777": (3, 50, "no credits"), ACCOUNT_A: (0, 5, None)}

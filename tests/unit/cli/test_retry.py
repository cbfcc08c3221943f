"""`minimax-watcher retry`: what it says of each file from the real records beside it, the request it
writes for the agent, and the paths it refuses; the command itself in a subprocess for its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ACCOUNT_A, TOKEN
from tests.helpers.images import png_bytes
from watcher.cli.retry import RetryUsageError, locate, run
from watcher.config.load import Config, load_config
from watcher.core.signature import signature_of
from watcher.disk.records import build_error_record, build_sidecar
from watcher.report.status_report import choose_state_dir
from watcher.state.retry_requests import RetryRequest, take


def image(folder: Path, name: str, seed: int = 0) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(seed))
    return path


def uploaded(path: Path, video: dict[str, Any] | None = None) -> Path:
    sidecar = build_sidecar(image_path=str(path), account=ACCOUNT_A, file_id=f"user:1-minimax:{ACCOUNT_A}-file:1",
                            oss_path="oss/1", signature=signature_of(os.stat(path)), sha256="0" * 64,
                            content_type="image/png")  # fmt: skip
    Path(f"{path}.json").write_text(json.dumps(sidecar))
    if video is not None:
        Path(f"{path}.video.json").write_text(json.dumps(video))
    return path


def failed_upload(path: Path, error: str = "the API refused it") -> Path:
    record = build_error_record(error=error, code=400, attempts=1, signature=signature_of(os.stat(path)))
    Path(f"{path}.error.json").write_text(json.dumps(record))
    return path


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def config_of(tmp_path: Path, folders: list[dict[str, Any]]) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"folders": folders}))
    return load_config(path)


def generating(drop: Path, **extra: Any) -> Config:
    folder = {"path": str(drop), "account": ACCOUNT_A, "generate": {"model": "I2V-2.3"}, **extra}
    return config_of(drop.parent, [folder])


def retry(
    config: Config, state: Path, *paths: str, failed: bool = False, folder: str | None = None
) -> list[str]:
    lines: list[str] = []
    code = run(
        list(paths),
        failed=failed,
        folder=folder,
        folders=config.folders,
        state_dirs=[state],
        out=lines.append,
    )
    assert code == 0
    return lines


def test_each_named_file_is_told_and_only_those_with_something_to_retry_are_asked(
    tmp_path: Path, drop: Path
) -> None:
    config = generating(drop)
    a = failed_upload(image(drop, "a.png", 1), "bad image")
    b = uploaded(image(drop, "b.png", 2), {"status": "moderated", "error": "refused by moderation"})
    c = uploaded(image(drop, "c.png", 3))
    d = uploaded(image(drop, "d.png", 4), {"status": "unknown", "error": "the answer was lost"})
    e = uploaded(image(drop, "e.png", 5), {"status": "done", "video": "videos/e.mp4"})
    f = uploaded(image(drop, "f.png", 6), {"status": "generating"})
    g = image(drop, "g.png", 7)
    state = tmp_path / "state"
    lines = retry(config, state, *(str(p) for p in (a, b, c, d, e, f, g)), str(drop / "gone.png"))
    assert lines[:-1] == [
        f"{a}: error record (bad image) cleared: the agent uploads it again",
        f"{b}: video moderated (refused by moderation): a new video will be requested",
        f"{c}: done, no video: a video will be requested",
        f"{d}: video unknown (the answer was lost): a new video will be requested",
        f"{e}: video done (videos/e.mp4): nothing to retry",
        f"{f}: video generating: nothing to retry",
        f"{g}: not uploaded yet (the agent uploads it): nothing to retry",
        f"{drop / 'gone.png'}: no such file: nothing to retry",
    ]
    assert lines[-1].endswith(f"no agent runs on {state} now; the agent takes it at its next start")
    assert take(state) == [RetryRequest((str(b), str(c), str(d)), failed=False, folder=None)]
    assert not Path(str(a) + ".error.json").exists()  # cleared here: the agent sees it go and uploads again


def test_nothing_to_retry_writes_no_request(tmp_path: Path, drop: Path) -> None:
    config = config_of(tmp_path, [{"path": str(drop)}])  # no generate: a done image has no video to ask
    done = uploaded(image(drop, "a.png"))
    state = tmp_path / "state"
    lines = retry(config, state, str(done))
    assert lines == [
        f"{done}: uploaded; its folder makes no videos (no generate block): nothing to retry",
        "nothing to ask the agent for",
    ]
    assert not state.exists()


def test_a_record_name_a_relative_path_or_a_linked_folder_names_its_image(
    tmp_path: Path, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = generating(drop)
    a = failed_upload(image(drop, "a.png"))
    (tmp_path / "link").symlink_to(drop)
    monkeypatch.chdir(tmp_path)
    for given in ("drop/a.png.error.json", "drop/./a.png", f"{tmp_path}/link/a.png", "drop/a.png.json"):
        place = locate(given, config.folders)
        assert place is not None and place.image == str(a), given


def test_a_path_outside_every_folder_asks_nothing(tmp_path: Path, drop: Path) -> None:
    config = generating(drop)
    a = failed_upload(image(drop, "a.png"))
    state = tmp_path / "state"
    with pytest.raises(RetryUsageError, match="/etc/passwd: not inside a configured folder; nothing asked"):
        retry(config, state, str(a), "/etc/passwd")
    with pytest.raises(
        RetryUsageError, match="a configured folder: name its files, or use --failed --folder"
    ):
        retry(config, state, str(drop))
    sub = image(drop, "sub/b.png")  # the folder is not recursive: not one of its files
    with pytest.raises(RetryUsageError, match="not inside a configured folder"):
        retry(config, state, str(sub))
    assert take(state) == []


def test_files_in_the_output_dir_and_failed_dir_are_told_why_not(tmp_path: Path, drop: Path) -> None:
    config = generating(drop, failed_dir="failed")
    video = drop / "videos" / "a.mp4"
    video.parent.mkdir()
    video.write_bytes(b"x")
    moved = failed_upload(image(drop, "failed/b.png"))
    lines = retry(config, tmp_path / "state", str(video), str(moved))
    assert lines[0].endswith("a video the agent made; retry takes the image it came from: nothing to retry")
    assert lines[1].endswith(
        "in failed_dir: move it back into the folder to upload it again: nothing to retry"
    )


def test_an_image_in_done_dir_with_a_failed_video_is_asked_for(tmp_path: Path, drop: Path) -> None:
    config = generating(drop, done_dir="done")
    moved = uploaded(image(drop, "done/a.png"), {"status": "failed", "error": "status 3"})
    lines = retry(config, tmp_path / "state", str(moved))
    assert lines[0] == f"{moved}: video failed (status 3): a new video will be requested"
    assert take(tmp_path / "state") == [RetryRequest((str(moved),), failed=False, folder=None)]


@pytest.mark.hostile
def test_records_are_read_without_following_a_symlink(tmp_path: Path, drop: Path) -> None:
    config = generating(drop)
    outside = tmp_path / "outside"
    outside.mkdir()
    failed_upload(image(outside, "a.png"), "planted")
    (drop / "sub").symlink_to(outside)
    config = generating(drop, recursive=True)
    lines = retry(config, tmp_path / "state", str(drop / "sub" / "a.png"))
    assert lines[0] == f"{drop / 'sub' / 'a.png'}: cannot be reached (a symlink on the way): nothing to retry"
    link = drop / "b.png"
    link.symlink_to(outside / "a.png")
    Path(f"{link}.error.json").symlink_to(outside / "a.png.error.json")
    assert retry(config, tmp_path / "state", str(link))[0] == f"{link}: not a regular file: nothing to retry"
    assert take(tmp_path / "state") == []


@pytest.mark.hostile
def test_names_and_reasons_reach_the_terminal_escaped(tmp_path: Path, drop: Path) -> None:
    config = generating(drop)
    odd = failed_upload(image(drop, "evil\x1b[2J.png"), "bad\x1b]0;title\x07")
    [line] = retry(config, tmp_path / "state", str(odd))
    assert "\x1b" not in line and "\x07" not in line
    assert "evil\\x1b[2J.png: error record (bad\\x1b]0;title\\x07)" in line


def test_failed_finds_error_records_and_failed_or_unknown_videos_in_folders_and_done_dirs(
    tmp_path: Path, drop: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    gen = {"model": "m"}
    config = config_of(
        tmp_path,
        [
            {"path": str(drop), "account": ACCOUNT_A, "done_dir": "done", "generate": gen},
            {"path": str(other), "account": ACCOUNT_A},
        ],
    )
    a = failed_upload(image(drop, "a.png", 1))
    b = uploaded(image(drop, "b.png", 2), {"status": "unknown"})
    uploaded(image(drop, "c.png", 3), {"status": "done"})
    uploaded(image(drop, "d.png", 4))  # done, no video: not a failure, `--failed` leaves it
    e = uploaded(image(drop, "done/e.png", 5), {"status": "moderated", "error": "status 7"})
    f = failed_upload(image(other, "f.png", 6))
    state = tmp_path / "state"
    lines = retry(config, state, failed=True)
    assert sorted(lines[:-1]) == sorted(
        [
            f"{a}: error record (the API refused it) cleared: the agent uploads it again",
            f"{b}: video unknown (no reason given): a new video will be requested",
            f"{e}: video moderated (status 7): a new video will be requested",
            f"{f}: error record (the API refused it) cleared: the agent uploads it again",
        ]
    )
    assert take(state) == [RetryRequest((), failed=True, folder=None)]
    failed_upload(f)  # failed again
    lines = retry(config, state, failed=True, folder=str(other))
    assert lines[0] == f"{f}: error record (the API refused it) cleared: the agent uploads it again"
    assert len(lines) == 2
    assert take(state) == [RetryRequest((), failed=True, folder=str(other))]
    with pytest.raises(RetryUsageError, match=r"--folder .*: not a configured folder"):
        retry(config, state, failed=True, folder=str(tmp_path))


def test_failed_with_nothing_on_disk_still_asks_the_agent_whose_journal_decides(
    tmp_path: Path, drop: Path
) -> None:
    state = tmp_path / "state"
    lines = retry(generating(drop), state, failed=True)
    assert lines[0] == "no error records and no failed or unknown videos on disk"
    assert take(state) == [RetryRequest((), failed=True, folder=None)]


def test_the_state_folder_is_a_running_agents_else_the_first_that_exists(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert choose_state_dir([first, second]) == (first, None)
    second.mkdir()
    assert choose_state_dir([first, second]) == (second, None)
    first.mkdir()
    assert choose_state_dir([first, second]) == (first, None)


def test_a_state_folder_that_cannot_be_written_is_one_line_and_exit_1(
    tmp_path: Path, drop: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = uploaded(image(drop, "a.png"))  # done, no video: the agent is asked for one
    state = tmp_path / "state"
    state.write_text("a file where the state folder should be")
    code = run(
        [str(a)], failed=False, folder=None, folders=generating(drop).folders, state_dirs=[state], out=print
    )
    assert code == 1
    [error] = [r.getMessage() for r in caplog.records]
    assert f"cannot write the request into {state}/retry" in error and "nothing asked" in error


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "MINIMAX_WATCHER_CONFIG")}
    env.update(XDG_STATE_HOME=str(cwd / "state"), USEAPI_TOKEN=TOKEN, LANG="C", LC_ALL="C")
    return subprocess.run(
        [sys.executable, "-m", "watcher", "retry", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "name the files to retry, or --failed (not both)"),
        (("x.png", "--failed"), "name the files to retry, or --failed (not both)"),
        (("--folder", "drop", "x.png"), "--folder goes with --failed"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, drop: Path, args: tuple[str, ...], says: str) -> None:
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and says in result.stderr


def test_the_command_exit_codes_and_a_name_that_is_not_ascii(tmp_path: Path, drop: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"folders": [{"path": "drop", "generate": {"model": "m"}}]})
    )
    a = uploaded(image(drop, "café.png"))
    result = cli("drop/café.png", cwd=tmp_path)  # under LANG=C
    assert result.returncode == 0, result.stderr
    assert f"{a}: done, no video" in result.stdout
    assert take(tmp_path / "state" / "minimax-watcher") == [
        RetryRequest((str(a),), failed=False, folder=None)
    ]
    b = failed_upload(image(drop, "bé.png", 2))
    result = cli("drop/bé.png", cwd=tmp_path)
    assert result.returncode == 0 and f"{b}: error record" in result.stdout and "cleared" in result.stdout
    assert not Path(f"{b}.error.json").exists()
    result = cli("/etc/passwd", cwd=tmp_path)
    assert result.returncode == 2 and "/etc/passwd: not inside a configured folder" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "config.yaml").write_text("folders: [{path: drop, generate: {model: m, max_jobs: 0}}]\n")
    result = cli("--failed", cwd=tmp_path)
    assert result.returncode == 78 and "generate.max_jobs" in result.stderr

"""Unit tests for a folder's `generate` block (SPEC §8): its defaults, its resolved output_dir, and one
clear error per bad value (exit 78 via `ConfigError`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.config_files import write_config
from watcher.config.load import EX_CONFIG, ConfigError, load_config
from watcher.core.video import VideoSettings, canonical_json


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def load_generate(tmp_path: Path, drop: Path, block: str, extra: str = "") -> VideoSettings | None:
    text = f"folders:\n  - path: {drop}\n{extra}    generate:\n" + "".join(
        f"      {line}\n" for line in block.splitlines()
    )
    [folder] = load_config(write_config(tmp_path, text)).folders
    return folder.generate


def error_of(tmp_path: Path, drop: Path, block: str, extra: str = "") -> str:
    with pytest.raises(ConfigError) as info:
        load_generate(tmp_path, drop, block, extra)
    message = str(info.value)
    assert "\n" not in message  # one line
    return message


def test_a_folder_without_generate_makes_no_videos(tmp_path: Path, drop: Path) -> None:
    [folder] = load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n")).folders
    assert folder.generate is None


def test_the_defaults_and_a_resolved_output_dir(tmp_path: Path, drop: Path) -> None:
    video = load_generate(tmp_path, drop, "model: I2V-2.3")
    assert video == VideoSettings(model="I2V-2.3", output_dir=str(drop / "videos"))
    assert video.max_jobs == 2 and video.max_per_day == 50 and video.poll_seconds == 15
    assert video.prompt is None and video.params == {} and not video.require_prompt_file
    assert not (drop / "videos").exists()  # made when the first video lands, not by reading the config


def test_every_key_given(tmp_path: Path, drop: Path) -> None:
    video = load_generate(
        tmp_path,
        drop,
        'model: I2V-2.3\nprompt: "slow dolly in"\nparams: {options: 768p-6sec, duration: 6}\n'
        "output_dir: ../videos\nmax_jobs: 4\nmax_per_day: 0\npoll_seconds: 1\nrequire_prompt_file: true",
    )
    assert video is not None
    assert video.prompt == "slow dolly in"
    assert video.params == {"options": "768p-6sec", "duration": 6}
    assert video.params_json == canonical_json({"duration": 6, "options": "768p-6sec"})
    assert video.output_dir == str(tmp_path / "videos")
    assert (video.max_jobs, video.max_per_day, video.poll_seconds) == (4, 0, 1)
    assert video.require_prompt_file


def test_params_in_another_order_are_the_same_settings(tmp_path: Path, drop: Path) -> None:
    # The params are part of each video's key: reordering them in the YAML must not make new videos.
    a = load_generate(tmp_path, drop, "model: m\nparams: {a: 1, b: {x: 1, y: 2}}")
    b = load_generate(tmp_path, drop, "model: m\nparams: {b: {y: 2, x: 1}, a: 1}")
    assert a == b


def test_an_absolute_output_dir_may_be_on_another_filesystem(tmp_path: Path, drop: Path) -> None:
    mounts = (Path(p) for p in ("/dev/shm", "/run", "/tmp") if Path(p).is_dir())
    other = next((p for p in mounts if p.stat().st_dev != drop.stat().st_dev), None)
    if other is None:
        pytest.skip("no other filesystem mounted here to point an output_dir at")
    video = load_generate(tmp_path, drop, f"model: m\noutput_dir: {other}/mmw-videos")
    assert video is not None and video.output_dir == f"{other}/mmw-videos"


@pytest.mark.parametrize(
    ("block", "says"),
    [
        ("prompt: x", "folders[0].generate.model: required key is missing"),
        ('model: ""', "folders[0].generate.model: must name the video model"),
        ('model: " I2V"', "no spaces or control characters"),
        ("model: 23", "folders[0].generate.model: Input should be a valid string"),
        ("model: " + "m" * 101, "longer than 100 characters"),
        ('model: m\nprompt: "  "', "folders[0].generate.prompt: is empty; leave it out"),
        ("model: m\nprompt: " + "p" * 2001, "has 2,001 characters; at most 2,000"),
        ("model: m\nparams: [a, b]", "folders[0].generate.params: must be a mapping"),
        ("model: m\nparams: {fileID: x}", "params: fileID: set by the agent"),
        ("model: m\nparams: {account: '1', prompt: p}", "params: account, prompt: set by the agent"),
        ("model: m\nparams: {model: x}", "model: set by the agent"),
        ("model: m\nparams: {end_frame_fileID: x}", "end_frame_fileID: set by the agent"),
        ("model: m\nparams: {when: 2024-01-01}", "params: when: a date cannot be sent as JSON"),
        ("model: m\nparams: {x: .nan}", "params: x: must be a finite number"),
        ("model: m\nparams: {x: {1: a}}", "params: x: a mapping's keys must be text"),
        ("model: m\nparams: {1: a}", "each key must be a non-empty name"),
        ("model: m\nmax_jobs: 0", "folders[0].generate.max_jobs: Input should be greater than or equal to 1"),
        ("model: m\nmax_jobs: 11", "max_jobs: Input should be less than or equal to 10"),
        ("model: m\nmax_per_day: -1", "max_per_day: Input should be greater than or equal to 0"),
        ("model: m\npoll_seconds: 0.5", "poll_seconds: Input should be greater than or equal to 1"),
        ("model: m\nrequire_prompt_file: yes please", "require_prompt_file: Input should be a valid boolean"),
        ("model: m\nmax_job: 2", "folders[0].generate.max_job: unknown key"),
        ('model: m\noutput_dir: ""', "output_dir: must name a folder"),
    ],
)
def test_each_bad_value_is_one_clear_error(tmp_path: Path, drop: Path, block: str, says: str) -> None:
    assert says in error_of(tmp_path, drop, block)


@pytest.mark.parametrize("output_dir", [".", "..", "./", "sub/.."])
def test_an_output_dir_that_is_the_folder_or_above_it_is_refused(
    tmp_path: Path, drop: Path, output_dir: str
) -> None:
    message = error_of(tmp_path, drop, f"model: m\noutput_dir: {output_dir}")
    assert "folders[0].generate.output_dir" in message and "the watched folder or above it" in message


def test_an_output_dir_below_a_file_is_refused(tmp_path: Path, drop: Path) -> None:
    (drop / "file").write_text("x")
    assert "is not a directory" in error_of(tmp_path, drop, "model: m\noutput_dir: file/videos")


@pytest.mark.parametrize(
    ("extra", "output_dir", "says"),
    [
        ("    done_dir: done\n", "done", "overlaps folders[0].done_dir"),
        ("    done_dir: done\n", "done/videos", "overlaps folders[0].done_dir"),
        ("    failed_dir: failed\n", "failed", "overlaps folders[0].failed_dir"),
        ("    done_dir: videos/done\n", "videos", "overlaps folders[0].done_dir"),
    ],
)
def test_an_output_dir_overlapping_done_dir_or_failed_dir_is_refused(
    tmp_path: Path, drop: Path, extra: str, output_dir: str, says: str
) -> None:
    assert says in error_of(tmp_path, drop, f"model: m\noutput_dir: {output_dir}", extra)


@pytest.mark.parametrize("output_dir", ["{other}", "{other}/videos", "{outer}"])
def test_an_output_dir_overlapping_another_watched_folder_is_refused(tmp_path: Path, output_dir: str) -> None:
    a, b = tmp_path / "a", tmp_path / "outer" / "b"
    a.mkdir()
    b.mkdir(parents=True)
    where = output_dir.format(other=b, outer=b.parent)
    text = f"folders:\n  - path: {a}\n    generate: {{model: m, output_dir: {where}}}\n  - path: {b}\n"
    with pytest.raises(
        ConfigError, match=r"folders\[0\]\.generate\.output_dir: .* overlaps folders\[1\]\.path"
    ):
        load_config(write_config(tmp_path, text))


def test_generate_needs_images_among_the_media(tmp_path: Path, drop: Path) -> None:
    message = error_of(tmp_path, drop, "model: m", extra="    media: [audio]\n")
    assert "folders[0].generate: videos are made from images; add image to folders[0].media" in message


def test_two_folders_on_one_account_may_set_different_caps(tmp_path: Path) -> None:
    # Allowed; the smallest of them holds for the account (the generator's, as the description says).
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    text = (
        f'folders:\n  - path: {a}\n    account: "1"\n    generate: {{model: m, max_jobs: 1, max_per_day: 5}}\n'
        f'  - path: {b}\n    account: "1"\n    generate: {{model: m, max_jobs: 3, max_per_day: 9}}\n'
    )
    folders = load_config(write_config(tmp_path, text)).folders
    assert [(f.generate.max_jobs, f.generate.max_per_day) for f in folders if f.generate] == [(1, 5), (3, 9)]


def test_the_output_dir_is_set_aside_so_its_mp4s_are_never_uploaded(tmp_path: Path, drop: Path) -> None:
    text = f"folders:\n  - path: {drop}\n    media: [image, video]\n    generate: {{model: m}}\n"
    [folder] = load_config(write_config(tmp_path, text)).folders
    assert not folder.admits(str(drop / "videos" / "a.mp4"))
    assert folder.admits(str(drop / "a.mp4"))


def test_check_config_shows_the_generate_block_and_a_bad_one_exits_78(tmp_path: Path, drop: Path) -> None:
    good = write_config(tmp_path, f"folders:\n  - path: {drop}\n    generate: {{model: I2V-2.3}}\n")
    run = [sys.executable, "-m", "watcher", "check-config", "--config"]
    result = subprocess.run([*run, str(good)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "generate:\n    model: I2V-2.3\n" in result.stdout
    assert f"output_dir: {drop / 'videos'}" in result.stdout
    bad = write_config(
        tmp_path, f"folders:\n  - path: {drop}\n    generate: {{model: m, max_jobs: 99}}\n", "bad.yaml"
    )
    result = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == EX_CONFIG
    assert "folders[0].generate.max_jobs: Input should be less than or equal to 10" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

"""`status` as a terminal shows it: hostile names and error texts, names that are not UTF-8."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ACCOUNT_A
from tests.helpers.images import png_bytes


def status(tmp_path: Path, *args: str, encoding: str = "utf-8:strict") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "MINIMAX_WATCHER_CONFIG")}
    env.update(PYTHONIOENCODING=encoding, LANG="C", LC_ALL="C", XDG_STATE_HOME=str(tmp_path / "state"))
    return subprocess.run(
        [sys.executable, "-m", "watcher", "status", "--config", str(tmp_path / "config.yaml"), *args],
        env=env,
        capture_output=True,
        timeout=60,
    )


def make_folder(tmp_path: Path) -> Path:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = {"folders": [{"path": str(drop), "account": ACCOUNT_A}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return drop


def fail_by_hand(image: Path, error: str) -> None:
    """An error record that matches the file, as the agent (or an API error text) would leave it."""
    st = image.stat()
    record = {"error": error, "code": 400, "attempts": 1, "failedAt": "2026-11-30T00:00:00Z",
              "size": st.st_size, "mtime_ns": st.st_mtime_ns}  # fmt: skip
    (image.parent / (image.name + ".error.json")).write_text(json.dumps(record))


def test_escape_sequences_in_names_and_error_texts_never_reach_the_terminal(tmp_path: Path) -> None:
    drop = make_folder(tmp_path)
    image = drop / "evil\x1b[2J\x1b]0;owned\x07.png"
    image.write_bytes(png_bytes(11))
    fail_by_hand(image, "bad request \x1b[31mred\x1b[0m\x9b2J and\nnewline " + "x" * 5000)
    result = status(tmp_path)
    assert result.returncode == 1, result.stderr  # a failed file needs attention
    out = result.stdout
    assert b"\x1b" not in out and b"\x07" not in out and "\x9b".encode() not in out
    assert b"\\x1b[2J" in out  # shown, escaped
    assert len(out) < 2000  # the 5,000-character error is cut on the terminal
    [line] = [line for line in out.splitlines() if line.startswith(b"  failed:")]
    assert b"newline" in line  # the newline inside the text did not split the line


def test_a_name_that_is_not_utf8_shows_in_both_views_under_a_strict_utf8_stdout(tmp_path: Path) -> None:
    drop = make_folder(tmp_path)
    raw = os.fsencode(str(drop)) + b"/caf\xe9.png"
    with open(raw, "wb") as f:
        f.write(png_bytes(12))
    fail_by_hand(Path(os.fsdecode(raw)), "rejected")
    text = status(tmp_path)
    assert text.returncode == 1, text.stderr
    assert b"caf\\xe9.png" in text.stdout
    as_json = status(tmp_path, "--json")
    assert as_json.returncode == 1, as_json.stderr
    [folder] = json.loads(as_json.stdout)["folders"]
    assert folder["failed"] == 1 and folder["failures"][0]["file"] == "caf\udce9.png"
    ascii_only = status(tmp_path, "--json", encoding="ascii:strict")
    assert ascii_only.returncode == 1 and json.loads(ascii_only.stdout) == json.loads(as_json.stdout)


def test_a_name_too_long_for_its_records_counts_as_failed_with_the_reason(tmp_path: Path) -> None:
    drop = make_folder(tmp_path)
    (drop / ("n" * 246 + ".png")).write_bytes(png_bytes(13))
    result = status(tmp_path, "--json")
    [folder] = json.loads(result.stdout)["folders"]
    assert (folder["failed"], folder["pending"]) == (1, 0)
    assert "250 bytes" in folder["failures"][0]["error"]

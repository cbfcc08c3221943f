"""`minimax-watcher help [TOPIC]`: the pages come from the schema, the metrics registry and the parser, and
go through a pager only when stdout is a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from watcher.cli.help_topics import config_page, metrics_page, overview
from watcher.cli.parser import HELP_TOPICS, build_parser
from watcher.config.sample import config_keys, requirement
from watcher.report.metric_catalogue import catalogue

# Copies what it is given on stdin to the file named by its argument, and its own argv beside it.
RECORDER = """import sys
open(sys.argv[-1], "wb").write(sys.stdin.buffer.read())
open(sys.argv[-1] + ".argv", "w").write(" ".join(sys.argv[1:-1]))
"""


def run_help(
    *words: str, env: dict[str, str] | None = None, stdout: int | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PAGER", "MINIMAX_WATCHER_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "watcher", "help", *words],
        env={**base, "COLUMNS": "100", **(env or {})},
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


# ---- the pages ----------------------------------------------------------------------------------------


def test_help_config_has_every_key_with_its_default_bounds_and_description() -> None:
    page = " ".join(config_page().split())  # the wrapping aside
    keys = list(config_keys())
    assert len(keys) > 30
    for key, field in keys:
        assert f" {key} (" in page, key
        assert " ".join((field.description or "").split()) in page, key
        if not isinstance(field.default, BaseModel):
            assert f"; {requirement(field)})" in page, key
    assert "concurrency (integer; default 4; >= 1, <= 64)" in page
    assert "folders[].media (a list, each one of image, audio, video; default [image]; at least 1)" in page
    assert "folders[].generate.model (text; required)" in page
    assert 'Example: account: "123456"' in page


def test_help_metrics_has_every_metric_with_its_labels_and_help() -> None:
    page = metrics_page()
    flat = " ".join(page.split())
    own = [entry for entry in catalogue() if entry.own]
    assert len(own) >= 11
    for entry in own:
        assert entry.series[0] in page
        assert ("labels: " + ", ".join(entry.labels) if entry.labels else "no labels") in page
        assert " ".join(entry.help.split()) in flat
    assert "minimax_watcher_uploads_total\n        counter; labels: account, result\n" in page
    assert "minimax_watcher_video_seconds_bucket, _count, _sum\n        histogram; no labels\n" in page
    assert "process_resident_memory_bytes" in page  # the standard ones, named once
    assert "_created" not in page


def test_help_alone_lists_the_topics_and_every_command() -> None:
    parser = build_parser()
    page = overview(parser)
    for topic, summary in HELP_TOPICS.items():
        assert f"help {topic}" in page and summary in " ".join(page.split())
    commands = next(a for a in parser._actions if a.dest == "command")
    for name in commands.choices or []:
        assert f"\n    {name} " in page, name


# ---- the command --------------------------------------------------------------------------------------


def test_into_a_pipe_the_page_is_written_plainly_and_no_pager_runs(tmp_path: Path) -> None:
    recorder = tmp_path / "pager.py"
    recorder.write_text(RECORDER)
    paged = tmp_path / "paged"
    result = run_help("config", env={"PAGER": f"{sys.executable} {recorder} {paged}"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("NAME\n    config.yaml - the minimax-watcher config\n")
    assert "folders[].path  (text; required)" in result.stdout
    assert not paged.exists()


@pytest.mark.parametrize("topic", ["metrics", "status", None])
def test_each_topic_and_command_has_a_page(topic: str | None) -> None:
    result = run_help(*([topic] if topic else []))
    assert result.returncode == 0, result.stderr
    first = {"metrics": "NAME\n    minimax-watcher metrics", "status": "usage: minimax-watcher status"}
    assert result.stdout.startswith(first.get(topic or "", "NAME\n    minimax-watcher - "))


def test_an_unknown_topic_is_refused_in_one_line() -> None:
    result = run_help("confg")
    assert result.returncode == 2
    assert "invalid choice: 'confg' (choose from 'config', 'metrics', 'run'," in result.stderr
    assert "Traceback" not in result.stderr


def _on_a_terminal(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    main, terminal = pty.openpty()
    try:
        result = run_help("config", env=env, stdout=terminal)
    finally:
        os.close(terminal)
        os.close(main)
    return result, tmp_path / "paged"


def test_on_a_terminal_the_page_goes_through_pager(tmp_path: Path) -> None:
    recorder = tmp_path / "pager.py"
    recorder.write_text(RECORDER)
    result, paged = _on_a_terminal(tmp_path, {"PAGER": f"{sys.executable} {recorder} {tmp_path / 'paged'}"})
    assert result.returncode == 0, result.stderr
    assert paged.read_text() == run_help("config").stdout  # the same page, whole


@pytest.mark.parametrize("pager", ["no-such-pager --flag", "less 'unbalanced"])
def test_on_a_terminal_a_pager_that_cannot_run_leaves_the_page_plain(tmp_path: Path, pager: str) -> None:
    main, terminal = pty.openpty()
    env = {**os.environ, "PAGER": pager, "COLUMNS": "100"}
    with subprocess.Popen(
        [sys.executable, "-m", "watcher", "help", "config"], stdout=terminal, env=env
    ) as proc:
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the program has closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(timeout=60) == 0
    os.close(main)
    assert shown.startswith(b"NAME\r\n    config.yaml")
    assert b"folders[].generate.require_prompt_file" in shown  # the whole page


def test_the_overview_names_the_readme_of_pyproject() -> None:
    urls = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())["project"][
        "urls"
    ]
    assert urls["Documentation"] in overview(build_parser())


def test_on_a_terminal_without_pager_less_r_is_used(tmp_path: Path) -> None:
    # A program named less first on $PATH records how it is called.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    less = bin_dir / "less"
    less.write_text(
        f"#!{sys.executable}\n"
        + RECORDER.replace("sys.argv[1:-1]", "sys.argv[1:]").replace(
            "sys.argv[-1]", repr(str(tmp_path / "paged"))
        )
    )
    less.chmod(0o755)
    result, paged = _on_a_terminal(tmp_path, {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PAGER": ""})
    assert result.returncode == 0, result.stderr
    assert paged.read_text().startswith("NAME\n    config.yaml")
    assert (tmp_path / "paged.argv").read_text() == "-R"

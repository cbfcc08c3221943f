"""`minimax-watcher completion bash|zsh`: the scripts, loaded into a real bash and a real zsh, complete the
parser's commands, options, choices and file names."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.cli.completion import completion_script
from watcher.cli.parser import HELP_TOPICS, build_parser

# Sources the script, then completes each line given as an argument the way bash does on <Tab>: one
# candidate per output line, a blank line after each completed line.
BASH_DRIVER = r"""
source "$1"; shift
spec=$(complete -p minimax-watcher) || { echo "no completion registered" >&2; exit 3; }
function=${spec##*-F }; function=${function%% *}
for line in "$@"; do
  read -ra COMP_WORDS <<<"$line"
  [[ $line == *" " ]] && COMP_WORDS+=("")
  COMP_LINE=$line; COMP_POINT=${#line}; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=()
  "$function" minimax-watcher "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sort; echo
done
"""

# An interactive zsh on a pseudo-terminal (zsh/zpty), with compinit and the script on its $fpath: each
# line is typed, then <Tab>, then a key whose widget prints the line as completion left it.
ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty shell 'zsh -f -i'
zpty -w shell "PROMPT=; fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -u -D"
# show prints the line as completed, then empties it for the next (a ^U typed ahead can be lost).
zpty -w shell 'show() { zle -I; print -r -- "@@""$BUFFER""@@"; BUFFER= }; zle -N show; bindkey "^X" show'
# Wait until the shell has run both (its echo of the line is not the printed word): keys typed while
# compinit still runs could be read by it, or thrown away, on a loaded machine.
zpty -w shell 'print set""up-done'
zpty -r shell out '*setup-done*'
shift
for line in "$@"; do
  zpty -n -w shell $'\x15'"$line"$'\t\x18'
  zpty -r shell out '*@@minimax-watcher*@@*'
  print -r -- "${${out##*@@minimax-watcher}%%@@*}"
done
zpty -d shell
"""


def bash_completes(script: Path, lines: list[str], cwd: Path) -> list[list[str]]:
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "driver", str(script), *lines],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("\n\n")[: len(lines)]
    return [[word for word in block.splitlines() if word] for block in blocks]


@pytest.fixture
def bash_script(tmp_path: Path) -> Path:
    script = tmp_path / "minimax-watcher.bash"
    script.write_text(completion_script("bash"))
    return script


def test_bash_completes_commands_options_and_choices(bash_script: Path, tmp_path: Path) -> None:
    st, dry, shells, topics, nothing = bash_completes(
        bash_script,
        [
            "minimax-watcher st",
            "minimax-watcher scan --d",
            "minimax-watcher completion ",
            "minimax-watcher help c",
            "minimax-watcher nonsense --d",
        ],
        cwd=tmp_path,
    )
    assert st == ["status"]
    assert dry == ["--dry-run"]
    assert shells == ["bash", "zsh"]
    assert topics == ["check-config", "completion", "config"]
    assert nothing == []


def test_bash_completes_every_command_of_the_parser(bash_script: Path, tmp_path: Path) -> None:
    (commands,) = bash_completes(bash_script, ["minimax-watcher "], cwd=tmp_path)
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command")
    assert commands == sorted(subcommands.choices or [])
    (topics,) = bash_completes(bash_script, ["minimax-watcher help "], cwd=tmp_path)
    assert set(topics) == {*HELP_TOPICS, *commands}


def test_bash_completes_file_names_where_a_file_goes(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(b"")
    (tmp_path / "config.yaml").write_text("")
    upload, config, scan = bash_completes(
        bash_script,
        ["minimax-watcher upload ph", "minimax-watcher status --config co", "minimax-watcher scan ph"],
        cwd=tmp_path,
    )
    assert upload == ["photo.png"]
    assert config == ["config.yaml"]
    assert scan == []  # scan takes no file


def test_the_command_prints_the_scripts() -> None:
    for shell in ("bash", "zsh"):
        result = subprocess.run(
            [sys.executable, "-m", "watcher", "completion", shell],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == completion_script(shell)
    refused = subprocess.run(
        [sys.executable, "-m", "watcher", "completion", "fish"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and "invalid choice: 'fish'" in refused.stderr


@pytest.mark.skipif(shutil.which("zsh") is None, reason="no zsh here (.ci/install-system-packages adds it)")
def test_zsh_parses_the_script_and_completes_with_it(tmp_path: Path) -> None:
    functions = tmp_path / "functions"
    functions.mkdir()
    script = functions / "_minimax-watcher"  # the name zsh's compinit autoloads for the command
    script.write_text(completion_script("zsh"))
    syntax = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    lines = ["minimax-watcher st", "minimax-watcher scan --d", "minimax-watcher check-config --j"]
    result = subprocess.run(
        ["zsh", "-f", "-c", ZSH_DRIVER, "driver", str(functions), *lines],
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TERM": "dumb"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [" status ", " scan --dry-run ", " check-config --json-schema "]

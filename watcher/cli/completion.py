"""`minimax-watcher completion bash|zsh`: the shell's completion script, generated from the parser
(`watcher.cli.parser`) by shtab, so it completes exactly the commands and options the parser takes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from watcher.cli.parser import build_parser

PROGRAM = "minimax-watcher"


def completion_script(shell: str) -> str:
    import shtab

    parser = build_parser()
    for action in _all_actions(parser):
        # A file argument completes file names; shtab reads this attribute.
        if action.type is Path or action.metavar == "PATH":
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    script: str = shtab.complete(parser, shell=shell)
    return script if script.endswith("\n") else script + "\n"


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(completion_script(args.shell))
    return 0


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    found = []
    for action in parser._actions:  # argparse keeps no public list; shtab reads the same one
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _all_actions(sub)
    return found

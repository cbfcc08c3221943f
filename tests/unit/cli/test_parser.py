"""The command line's own help: what each option says is true where it is read."""

from __future__ import annotations

import argparse

from watcher.cli.parser import build_parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def test_config_help_names_where_the_config_is_looked_for_on_every_command_page() -> None:
    """`help scan` shows the command's page alone: a "see above" there points at nothing."""
    pages = {name: sub.format_help() for name, sub in subcommands(build_parser()).items()}
    with_config = {name: page for name, page in pages.items() if "--config CONFIG" in page}
    assert {"run", "scan", "upload", "status", "retry", "check-config"} <= with_config.keys()
    for name, page in with_config.items():
        flat = " ".join(page.split())
        assert "see above" not in flat, name
        assert "MINIMAX_WATCHER_CONFIG, else ./config.yaml, else /etc/minimax-watcher/config.yaml" in flat, (
            name
        )

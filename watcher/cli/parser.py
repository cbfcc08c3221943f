"""The `minimax-watcher` command line's parser: its commands, options and help."""

from __future__ import annotations

import argparse
from pathlib import Path

from watcher import __version__
from watcher.service import install as service_install

EMULATOR_ACCOUNT = "123456"
EMULATOR_PORT = 8787  # `emulate` and `run --emulate` (when free)

DESCRIPTION = """\
Watch drop folders and upload each settled PNG, JPEG or WebP image to the useapi.net MiniMax
files API, writing <image>.json beside it with the fileID that videos/create accepts.

The token comes from $USEAPI_TOKEN, api.token_file in the config, or the systemd credential
`useapi-token`. The config is --config, else $MINIMAX_WATCHER_CONFIG, else ./config.yaml, else
/etc/minimax-watcher/config.yaml.
"""


# `minimax-watcher help TOPIC` (watcher/cli/help_topics.py); a command's name is a topic too.
HELP_TOPICS = {
    "config": "every config key: its type, default, bounds and meaning",
    "metrics": "the Prometheus metrics and their labels",
}
SHELLS = ("bash", "zsh")
CONFIG_DEFAULT = (
    "the variable MINIMAX_WATCHER_CONFIG, else ./config.yaml, else /etc/minimax-watcher/config.yaml"
)

SCAN_DESCRIPTION = """\
One pass: upload everything pending now, wait for the videos it asked for, then exit.
Exit status: 1 when a file failed (it has an error record, written now or by an earlier run;
`status` lists them) or was not uploaded after repeated temporary errors, or a video it asked
for ended failed, moderated or unknown; else 0. An empty file is no failure: it is said, and
uploaded once something is written to it. 78: a config error.
"""

STATUS_DESCRIPTION = """\
Per folder: uploaded, pending, failed and why; the running agent's accounts and uploads; videos.
Exit status: 0 when nothing needs attention; 1 when something does (a failed file, an account
paused or held, a failed or unknown video, a folder whose lock name is taken), as with --json;
78 for a config error.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minimax-watcher", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, help=f"config file (default: {CONFIG_DEFAULT})")
        # Also after the command (`run -v`), where people put it; SUPPRESS keeps the one given before.
        p.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug details"
        )
        return p

    run = with_config(
        commands.add_parser("run", help="watch the folders and upload, in the foreground (the service)")
    )
    run.add_argument(
        "--emulate",
        action="store_true",
        help="start the built-in API emulator on loopback and upload to it instead of useapi.net",
    )

    def described(name: str, help: str, description: str) -> argparse.ArgumentParser:
        # A command whose --help says more than its one line: its exit statuses, kept as written.
        formatter = argparse.RawDescriptionHelpFormatter
        return with_config(
            commands.add_parser(name, help=help, description=description, formatter_class=formatter)
        )

    scan = described(
        "scan", "upload everything pending now, then exit (1 if a file failed)", SCAN_DESCRIPTION
    )
    scan.add_argument("--emulate", action="store_true", help="upload to the built-in emulator")
    scan.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be uploaded (path, type, size in bytes, account or -) and every other file with "
        "why not; upload and write nothing",
    )
    upload = with_config(commands.add_parser("upload", help="upload one file now and print its sidecar JSON"))
    upload.add_argument("file", type=Path, help="the image to upload")
    upload.add_argument("--account", help="MiniMax account id (default: the folder's account in the config)")
    upload.add_argument("--emulate", action="store_true", help="upload to the built-in emulator")
    status = described(
        "status",
        "per folder: uploaded, pending, failed and why; exit 1 when something needs attention",
        STATUS_DESCRIPTION,
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    retry = with_config(
        commands.add_parser(
            "retry",
            help="take failed uploads and failed or unknown videos again, or ask for a video of a done image",
        )
    )
    retry.add_argument("paths", nargs="*", metavar="PATH", help="images in the configured folders")
    retry.add_argument(
        "--failed", action="store_true", help="every error record and every failed or unknown video"
    )
    retry.add_argument("--folder", help="with --failed: this configured folder only")
    retry.set_defaults(usage_error=retry.error)  # exit 2 with the usage, as argparse does
    check_config = with_config(
        commands.add_parser("check-config", help="validate the config and print the effective settings")
    )
    check_config.add_argument(
        "--strict",
        action="store_true",
        help="also refuse (78) what only run and scan need: a hook program not found (service install uses it)",
    )
    printed = check_config.add_mutually_exclusive_group()
    printed.add_argument(
        "--sample",
        action="store_true",
        help="print a commented sample config with every key, its default and bounds (reads no config)",
    )
    printed.add_argument(
        "--json-schema",
        action="store_true",
        help="print the config's JSON Schema, for editors that complete and check config.yaml (reads no config)",
    )
    service_install.add_parser(commands)
    emulate = commands.add_parser(
        "emulate", help="run the API emulator alone (for trying things and for tests)"
    )
    emulate.add_argument(
        "--port", type=int, default=EMULATOR_PORT, help="port on 127.0.0.1 (default 8787; 0 picks one)"
    )
    emulate.add_argument(
        "--account",
        dest="accounts",
        action="append",
        help=f"an account the emulator knows (repeatable; default {EMULATOR_ACCOUNT})",
    )
    completion = commands.add_parser(
        "completion", help="print the shell completion script: `minimax-watcher completion bash`, or zsh"
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    help_command = commands.add_parser(
        "help", help="man-style help: `help config`, `help metrics`, `help COMMAND`"
    )
    topic = help_command.add_argument(
        "topic", nargs="?", metavar="TOPIC", help="config, metrics or a command"
    )
    topic.choices = [*HELP_TOPICS, *commands.choices]  # every command, this one included
    return parser

"""`minimax-watcher help [TOPIC]`: man-style pages in the terminal, rendered from the config schema, the
metrics registry and the parser, through a pager when stdout is a terminal."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from watcher.cli.parser import HELP_TOPICS, build_parser
from watcher.config.sample import config_keys, requirement, yaml_scalar
from watcher.report.metric_catalogue import catalogue

README = "https://github.com/minimax-watcher/minimax-watcher#readme"
DEFAULT_PAGER = "less -R"
INDENT = "    "
SUMMARY = "watch drop folders and upload settled images to the useapi.net MiniMax files API"
TERM_WIDTH = 14  # the column where a command's or topic's text starts, past INDENT


def cmd_help(args: argparse.Namespace) -> int:
    parser = build_parser()
    commands = _commands(parser)
    topic = args.topic
    if topic is None:
        text = overview(parser)
    elif topic == "config":
        text = config_page()
    elif topic == "metrics":
        text = metrics_page()
    else:
        text = commands.choices[topic].format_help()  # argparse has refused any other word
    show(text)
    return 0


def show(text: str) -> None:
    """`text` through `$PAGER` (else `less -R`) when stdout is a terminal; written plainly otherwise."""
    data = text.encode("utf-8", "surrogateescape")
    if sys.stdout.isatty():
        try:
            argv = shlex.split(os.environ.get("PAGER") or DEFAULT_PAGER)
        except ValueError:  # unbalanced quotes: no pager rather than a traceback
            argv = []
        if argv and shutil.which(argv[0]) is not None:
            sys.stdout.flush()
            subprocess.run(argv, input=data, check=False)  # the pager's exit (q, ^C) is no error
            return
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


# ---- the pages ----------------------------------------------------------------------------------------


def overview(parser: argparse.ArgumentParser) -> str:
    commands = _commands(parser)
    lines = ["NAME", f"{INDENT}minimax-watcher - {SUMMARY}", "", "DESCRIPTION"]
    lines += _wrap(" ".join((parser.description or "").split()), INDENT)
    lines += ["", "TOPICS"]
    for name, summary in HELP_TOPICS.items():
        lines += _entry(f"help {name}", summary)
    lines += ["", "COMMANDS"]
    for action in commands._choices_actions:  # the subcommands in order, with their one-line help
        lines += _entry(action.dest, action.help or "")
    lines += [
        "",
        *_wrap("`minimax-watcher help COMMAND` (or COMMAND --help) shows a command's options.", INDENT),
    ]
    lines += ["", "SEE ALSO", f"{INDENT}{README}"]
    return "\n".join(lines) + "\n"


def config_page() -> str:
    """Every key of the schema: its type, default or requirement, bounds, description and example."""
    lines = [
        "NAME",
        f"{INDENT}config.yaml - the minimax-watcher config",
        "",
        "DESCRIPTION",
        *_wrap(
            "A YAML file: --config, else $MINIMAX_WATCHER_CONFIG, else ./config.yaml, else "
            "/etc/minimax-watcher/config.yaml. `minimax-watcher check-config` validates one and prints what "
            "it means; `check-config --sample` prints a commented sample with every key; `check-config "
            "--json-schema` its JSON Schema, for editors. A key of folders[] is a key of each folder in "
            "the list.",
            INDENT,
        ),
        "",
        "KEYS",
    ]
    for key, field in config_keys():
        section = _is_section(field.annotation)
        # A section with defaults of its own (api, hooks) has no one value to show as its default.
        kind = _kind(field.annotation)
        head = kind if isinstance(field.default, BaseModel) else f"{kind}; {requirement(field)}"
        lines += [*_gap(lines), f"{INDENT}{key}  ({head})", *_wrap(field.description or "", INDENT * 2)]
        if field.examples and not section:
            lines.append(f"{INDENT * 2}Example: {key.rsplit('.', 1)[-1]}: {yaml_scalar(field.examples[0])}")
    lines += ["", "SEE ALSO", f"{INDENT}minimax-watcher help metrics; {README}"]
    return "\n".join(lines) + "\n"


def metrics_page() -> str:
    """The metrics a running agent serves, by the names a query uses, with their labels and help."""
    entries = catalogue()
    lines = [
        "NAME",
        f"{INDENT}minimax-watcher metrics - what the agent tells Prometheus",
        "",
        "DESCRIPTION",
        *_wrap(
            "Served at http://HOST:PORT/metrics when metrics.listen is set (`minimax-watcher help config`). "
            "Counters count from the agent's start and go on across reloads. contrib/grafana-dashboard.json "
            "shows them; contrib/prometheus-alerts.yml alerts on them.",
            INDENT,
        ),
        "",
        "METRICS",
    ]
    for entry in (e for e in entries if e.own):
        names = [s for s in entry.series if not s.endswith("_created")]
        labels = f"labels: {', '.join(entry.labels)}" if entry.labels else "no labels"
        # A histogram's series: name_bucket, _count, _sum.
        shown = names[0] + "".join(", " + n.removeprefix(entry.name) for n in names[1:])
        lines += [*_gap(lines), f"{INDENT}{shown}", f"{INDENT * 2}{entry.kind}; {labels}"]
        lines += _wrap(entry.help, INDENT * 2)
    standard = [s for e in entries if not e.own for s in e.series if not s.endswith("_created")]
    lines += [
        "",
        "ALSO",
        *_wrap("prometheus_client's standard metrics: " + ", ".join(standard) + ".", INDENT),
    ]
    return "\n".join(lines) + "\n"


# ---- helpers ------------------------------------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser) -> Any:
    """The parser's subcommands action (argparse keeps no public handle on it)."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _wrap(text: str, indent: str) -> list[str]:
    width = max(60, min(shutil.get_terminal_size().columns, 100))
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def _gap(lines: list[str]) -> list[str]:
    """A blank line between entries, none under a heading (man's layout)."""
    return [] if lines[-1].isupper() else [""]


def _entry(term: str, text: str) -> list[str]:
    """`term` and its text beside it (below it when the term is long), wrapped at the text's column."""
    hang = INDENT + " " * TERM_WIDTH
    if len(term) >= TERM_WIDTH - 1:
        return [INDENT + term, *_wrap(text, hang)]
    first = INDENT + term.ljust(TERM_WIDTH)
    wrapped = _wrap(text, hang)
    return [first + wrapped[0][len(hang) :], *wrapped[1:]] if wrapped else [first.rstrip()]


def _is_section(annotation: Any) -> bool:
    return any(isinstance(a, type) and issubclass(a, BaseModel) for a in (annotation, *get_args(annotation)))


def _kind(annotation: Any) -> str:
    """A key's type in words: text, number, a list of text, one of image, audio, video, a section..."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        return " or ".join(_kind(a) for a in args if a is not NoneType)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        if _is_section(args[0]):
            return "a list of sections"
        inner = _kind(args[0])
        return f"a list, each {inner}" if inner.startswith("one of") else f"a list of {inner}"
    if origin is dict:
        return "a mapping"
    if _is_section(annotation):
        return "a section"
    names = {str: "text", float: "number", int: "integer", bool: "true or false"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))

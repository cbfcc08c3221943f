"""The `minimax-watcher` command line: run, scan, upload, status, check-config, emulate, service (help and
completion in their own modules)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from watcher import __version__
from watcher.agent import Agent
from watcher.cli.completion import cmd_completion
from watcher.cli.emulate import EMULATOR_TOKEN, emulated, start_emulator
from watcher.cli.help_topics import cmd_help
from watcher.cli.parser import EMULATOR_ACCOUNT, build_parser
from watcher.cli.progress import ProgressBar
from watcher.config.effective import describe_effective
from watcher.config.load import (
    DEFAULT_BASE_URL,
    EX_CONFIG,
    TOKEN_ENV,
    Config,
    ConfigError,
    default_config_path,
    load_config,
    with_base_url,
)
from watcher.config.token import ResolvedToken, register_proxy_secrets, resolve_token
from watcher.core.api_owner import ApiOwner, assumption, owner_for_reading
from watcher.core.folders import folder_containing
from watcher.core.media import ALL_KINDS
from watcher.core.messages import UploadJob
from watcher.core.outcome import FileChanged, UploadSuccess
from watcher.core.retry import RetryPolicy
from watcher.core.timings import Timings
from watcher.core.wording import count
from watcher.disk import descriptors
from watcher.report.logs import configure_logging
from watcher.report.sd_notify import Notifier
from watcher.service import install as service_install
from watcher.state.seal import SidecarSeal, load_seal_key
from watcher.state.unwritten import default_state_dir
from watcher.upload.client import UploadClient
from watcher.upload.pipeline import Pipeline
from watcher.video.client import VideoClient

log = logging.getLogger("watcher")

# `upload` retries a temporary failure a few times, then says so: a person is waiting for it.
UPLOAD_RETRIES = RetryPolicy(cap=30.0, give_up_after=5)


def main(argv: Sequence[str] | None = None) -> int:
    register_proxy_secrets()  # before anything can print them
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    handlers = {
        "run": cmd_run,
        "scan": cmd_scan,
        "upload": cmd_upload,
        "status": cmd_status,
        "retry": cmd_retry,
        "check-config": cmd_check_config,
        "emulate": cmd_emulate,
        "service": cmd_service,
        "completion": cmd_completion,
        "help": cmd_help,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EX_CONFIG
    except KeyboardInterrupt:
        return 130


def _config_path(args: argparse.Namespace) -> Path:
    return args.config if args.config is not None else default_config_path()


def _load_for_reading(path: Path) -> Config:
    """The config for a command that runs no hook: a hook program it cannot find is a warning line."""
    config = load_config(path, for_reading=True)
    for warning in config.warnings:
        log.warning("%s", warning)
    return config


def _client_for(token: ResolvedToken, pool_size: int) -> Any:
    def factory(config: Config) -> UploadClient:
        # A reload may bring a new token source; resolve it again, except for the emulator's fixed one.
        fresh = token if token.source == "emulator" else (resolve_token(config) or token)
        return UploadClient(
            config.base_url, fresh.value, pool_size=max(pool_size, config.settings.concurrency)
        )

    return factory


def _prepare(args: argparse.Namespace, emulate: bool) -> tuple[Config, ResolvedToken, Any]:
    descriptors.raise_limit()  # a lock file per watched folder: ~1,000 folders need more than 1,024
    config = load_config(_config_path(args))
    token = resolve_token(config)
    if emulate:
        return emulated(config, token)
    if token is None:
        raise no_token(config)
    return config, token, None


def no_token(config: Config | None) -> ConfigError:
    """The one way every command says it found no token: each place it looks, and --emulate."""
    where = config.source if config is not None else "the config"
    return ConfigError(
        f"no API token: set ${TOKEN_ENV}, api.token_file or api.token in {where}, or the systemd credential "
        "useapi-token (or add --emulate to try it without an account)"
    )


def cmd_run(args: argparse.Namespace) -> int:
    config, token, emulator = _prepare(args, args.emulate)
    notifier = Notifier()
    source = config.source

    def reload_config() -> Config:
        new = load_config(source)
        return with_base_url(new, emulator.base_url) if emulator is not None else new

    agent = Agent(
        config,
        _client_for(token, config.settings.concurrency),
        notifier=notifier,
        config_loader=reload_config,
        state_dir=default_state_dir(),
        timings=Timings.from_env(),
        video_client=VideoClient(config.base_url, token.value),
    )

    log.info("minimax-watcher %s starting with %s (token from %s)", __version__, source, token.source)
    try:
        with signals_to(agent):
            return agent.run()
    finally:
        notifier.close()
        if emulator is not None:
            emulator.stop()


@contextlib.contextmanager
def signals_to(agent: Agent) -> Iterator[None]:
    """SIGTERM/SIGINT stop the agent, SIGHUP reloads it; the previous handlers are back afterwards."""

    def on_stop(signum: int, frame: FrameType | None) -> None:
        agent.request_stop()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        agent.request_reload()

    wanted = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_reload}
    previous = {signum: signal.signal(signum, handler) for signum, handler in wanted.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def cmd_scan(args: argparse.Namespace) -> int:
    if args.dry_run:
        from watcher.cli.dry_run import plan, render, render_videos

        config = _load_for_reading(_config_path(args))
        owner = _reading_owner(config)
        note = assumption(owner)
        if note is not None:
            log.warning("%s", note)  # stderr: stdout stays one line per file and the total
        planned = list(plan(config, owner, everything=True))
        text = render(planned)
        videos = render_videos(config, planned)
        if videos is not None:
            text += "\n" + videos
        sys.stdout.buffer.write((text + "\n").encode("utf-8", "surrogateescape"))
        sys.stdout.buffer.flush()
        return 0
    config, token, emulator = _prepare(args, args.emulate)
    agent = Agent(
        config,
        _client_for(token, config.settings.concurrency),
        once=True,
        state_dir=default_state_dir(),
        timings=Timings.from_env(),
        video_client=VideoClient(config.base_url, token.value),
    )
    try:
        code = agent.run()
    finally:
        if emulator is not None:
            emulator.stop()
    log.info("%s", scan_summary(*agent.scan_totals()))
    if queued := agent.videos.queued():
        log.info(
            "%s for their account's day cap, a pause or a prompt file; the next run or scan asks for them",
            count(queued, "video") + (" waits" if queued == 1 else " wait"),
        )
    if not_made := agent.videos.not_made():
        log.error(
            "%s not made (failed, moderated or unknown): `minimax-watcher status` says why, "
            "`minimax-watcher retry --failed` asks again",
            count(not_made, "video"),
        )
        code = code or 1
    return code


def scan_summary(uploaded: int, failed: int, gave_up: int, empty: int) -> str:
    """`scan`'s last line. Its exit code: 1 when a file failed (an error record, new or left by an
    earlier run) or was given up after repeated temporary errors, or a video it waited for was not
    made, else 0: an empty file is no failure."""
    parts = [f"{uploaded} uploaded", f"{failed} failed"]
    if failed:
        parts[-1] += " (`minimax-watcher status` lists why)"
    if gave_up:
        parts.append(f"{count(gave_up, 'file')} not uploaded after repeated temporary errors")
    if empty:
        parts.append(f"{count(empty, 'empty file')} not uploaded (nothing to upload until written)")
    return "scan finished: " + ", ".join(parts)


def cmd_upload(args: argparse.Namespace) -> int:
    path = os.path.abspath(args.file)
    config: Config | None = None
    config_path = _config_path(args)
    if args.config is not None or config_path.exists():
        config = _load_for_reading(config_path)
    token = resolve_token(config)
    folder = folder_containing(path, config.folders) if config is not None else None
    account = args.account
    if account is None and folder is not None:
        account = folder.account
    # A file in a watched folder is held to that folder's media; any other, to every kind the API takes.
    kinds = folder.media if folder is not None else ALL_KINDS
    base_url = config.base_url if config is not None else DEFAULT_BASE_URL
    emulator = None
    if args.emulate:
        emulator, token = start_emulator([account], token)
        base_url = emulator.base_url
    elif token is None:
        raise no_token(config)
    client = UploadClient(base_url, token.value, pool_size=1)
    progress = ProgressBar(os.path.basename(path)) if sys.stderr.isatty() else None
    # The seal key is read (made, the first time) only once there is a sidecar to seal.
    pipeline = Pipeline(seal=_SealOnFirstUse(default_state_dir()))
    job = UploadJob(path, account, None, kinds=kinds)
    try:
        done = pipeline.run_until_final(job, client, UPLOAD_RETRIES, progress)
    finally:
        client.close()
        if emulator is not None:
            emulator.stop()
    outcome = done.outcome
    if isinstance(outcome, UploadSuccess):
        if done.record_error is not None:
            log.error("%s: uploaded, but the sidecar cannot be written: %s", path, done.record_error)
        print(json.dumps(done.sidecar, indent=2, ensure_ascii=False))
        return 0
    log.error("%s: %s", path, outcome.reason if isinstance(outcome, FileChanged) else outcome.error)
    return 1


class _SealOnFirstUse:
    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self._seal: SidecarSeal | None = None

    def seal(self, sidecar: dict[str, Any]) -> dict[str, Any]:
        if self._seal is None:
            self._seal = SidecarSeal(load_seal_key(self._state_dir))
        return self._seal.seal(sidecar)


def _reading_owner(config: Config) -> ApiOwner:
    """Whose sidecars `status` and `scan --dry-run` count as done (they need no token)."""
    return owner_for_reading(config.base_url, lambda: getattr(resolve_token(config), "value", None))


def cmd_status(args: argparse.Namespace) -> int:
    from watcher.cli.status import ATTENTION_EXIT, needs_attention, render_json, render_text
    from watcher.report.live_status import SERVICE_STATE_DIR
    from watcher.report.status_report import build_status

    config = _load_for_reading(_config_path(args))
    owner = _reading_owner(config)
    report = build_status(config, [default_state_dir(), SERVICE_STATE_DIR], owner)
    # Bytes, not text: stdout's own encoding (ASCII under LANG=C) must not decide whether it works.
    note = assumption(owner)
    if note is not None and args.json:
        log.warning("%s", note)
    elif note is not None:
        report["note"] = note
    attention = needs_attention(report)
    text = render_text(report)
    if attention:
        text += f"\nneeds attention: {', '.join(attention)} (exit status {ATTENTION_EXIT})"
    output = render_json(report) if args.json else (text + "\n").encode("utf-8")
    sys.stdout.flush()
    sys.stdout.buffer.write(output)
    sys.stdout.buffer.flush()
    return ATTENTION_EXIT if attention else 0


def cmd_retry(args: argparse.Namespace) -> int:
    from watcher.cli.retry import RetryUsageError, print_line, run
    from watcher.report.live_status import SERVICE_STATE_DIR

    if bool(args.paths) == args.failed:
        args.usage_error("name the files to retry, or --failed (not both)")
    if args.folder is not None and not args.failed:
        args.usage_error("--folder goes with --failed")
    config = _load_for_reading(_config_path(args))
    try:
        return run(
            [os.fsdecode(p) for p in args.paths],
            failed=args.failed,
            folder=args.folder,
            folders=config.folders,
            state_dirs=[default_state_dir(), SERVICE_STATE_DIR],
            out=print_line,
        )
    except RetryUsageError as exc:
        log.error("%s", exc)
        return 2


def cmd_check_config(args: argparse.Namespace) -> int:
    if args.sample:
        from watcher.config.sample import render_sample

        print(render_sample(), end="")
        return 0
    if args.json_schema:
        from watcher.config.json_schema import render_json_schema

        print(render_json_schema(), end="")
        return 0
    path = _config_path(args)
    config = load_config(path) if args.strict else _load_for_reading(path)
    token = resolve_token(config)
    print(yaml.safe_dump(describe_effective(config, token), sort_keys=False), end="")
    if token is None:
        log.warning("no API token found: `run` needs one (or --emulate to try without an account)")
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    if args.service_action == "install":
        return service_install.install(args.config, dry_run=args.dry_run)
    return service_install.uninstall(dry_run=args.dry_run)


def cmd_emulate(args: argparse.Namespace) -> int:
    from watcher.emulator import serve_forever

    token = os.environ.get(TOKEN_ENV, "").strip() or EMULATOR_TOKEN
    if token == EMULATOR_TOKEN:
        log.info("the emulator accepts the token %s (set %s to choose another)", EMULATOR_TOKEN, TOKEN_ENV)
    else:
        log.info("the emulator accepts the token in $%s", TOKEN_ENV)
    try:
        serve_forever(token=token, accounts=args.accounts or [EMULATOR_ACCOUNT], port=args.port)
    except OSError as exc:  # the port: taken, or not ours to bind
        log.error(
            "emulate: cannot listen on 127.0.0.1:%d (%s): choose another with --port, 0 for any free one",
            args.port,
            exc.strerror or exc,
        )
        return 1
    return 0

"""`--emulate` (run, scan, upload): the built-in emulator on 127.0.0.1:8787 when free, and one line
saying where it is, so that docs/emulator.md's `curl localhost:8787/_emulator/...` reaches it."""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from watcher.cli.parser import EMULATOR_ACCOUNT, EMULATOR_PORT
from watcher.config.load import Config, with_base_url
from watcher.config.token import ResolvedToken

if TYPE_CHECKING:  # imported when used: the agent without --emulate never loads the emulator
    from watcher.emulator import Emulator

log = logging.getLogger("watcher")

EMULATOR_TOKEN = "user:1-emulator"


def start_emulator(
    accounts: Iterable[str | None], token: ResolvedToken | None
) -> tuple[Emulator, ResolvedToken]:
    """An emulator that knows `accounts` (the emulator's default one when none is named), on
    `EMULATOR_PORT` when it is free; its address said in one line."""
    known = sorted({a for a in accounts if a}) or [EMULATOR_ACCOUNT]
    token = ResolvedToken(token.value if token else EMULATOR_TOKEN, "emulator")
    emulator = start_on(EMULATOR_PORT, token.value, known)
    taken = "" if emulator.port == EMULATOR_PORT else f"port {EMULATOR_PORT} is taken, so "
    log.info(
        "%semulating the API at %s (accounts %s; every request it gets: curl %s/_emulator/requests); "
        "nothing leaves this machine",
        taken,
        emulator.origin,
        ", ".join(known),
        emulator.origin,
    )
    return emulator, token


def start_on(port: int, token: str, accounts: list[str]) -> Emulator:
    """Started on 127.0.0.1:`port`, or on a port the kernel picks when that one is taken. The same base
    URL at each start keeps the emulator's sidecars this agent's own (`watcher.core.api_owner`)."""
    from watcher.emulator import Emulator

    try:
        return Emulator(token=token, accounts=accounts, poll_interval=0.5, port=port).start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
    return Emulator(token=token, accounts=accounts, poll_interval=0.5).start()


def emulated(config: Config, token: ResolvedToken | None) -> tuple[Config, ResolvedToken, Emulator]:
    """`config` uploading to a new emulator that knows its folders' accounts."""
    emulator, token = start_emulator((f.account for f in config.folders), token)
    return with_base_url(config, emulator.base_url), token, emulator

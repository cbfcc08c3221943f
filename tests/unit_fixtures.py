"""Fixtures shared by the unit tests: one real emulator with a single account, and a client for it.

tests/conftest.py registers this module as a plugin, so any test can ask for `emu` and `client`;
import `TOKEN` and `ACCOUNT` from here to match them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from watcher.client import UploadClient
from watcher.emulator import Emulator

TOKEN = "user:1-test"
ACCOUNT = "123456"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=[ACCOUNT]) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[UploadClient]:
    c = UploadClient(emu.base_url, TOKEN, connect_timeout=5, read_timeout=10)
    yield c
    c.close()

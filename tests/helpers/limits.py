"""Starting the agent with a descriptor limit of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def agent_descriptor_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """Agents started from now on (in this test) may open `limit` descriptors: soft and hard, so the
    agent cannot raise it (`ulimit -n` in sh sets both)."""
    wrapper = tmp_path / f"python-with-{limit}-descriptors"
    wrapper.write_text(f'#!/bin/sh\nulimit -n {limit} && exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(wrapper))  # what tests.helpers.agent starts the agent with

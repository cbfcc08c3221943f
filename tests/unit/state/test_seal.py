"""Sidecar seals: only what this agent wrote verifies; the key lives in the state folder."""

from __future__ import annotations

import stat
from pathlib import Path

from watcher.state.seal import SEAL_KEY_FILE, SidecarSeal, load_seal_key

SIDECAR = {
    "fileID": "user:1-minimax:2-file:3",
    "ossPath": "https://o/x",
    "account": "2",
    "size": 5,
    "sha256": "ab",
}


def test_a_sealed_sidecar_verifies_and_any_edit_of_what_dedupe_trusts_breaks_it() -> None:
    seal = SidecarSeal(b"k" * 32)
    sealed = seal.seal(SIDECAR)
    assert seal.verifies(sealed)
    for key, value in [
        ("fileID", "user:1-minimax:2-file:4"),
        ("sha256", "cd"),
        ("size", 6),
        ("account", "9"),
    ]:
        assert not seal.verifies({**sealed, key: value}), key
    assert seal.verifies({**sealed, "uploadedAt": "later"})  # what dedupe does not use may change


def test_an_unsealed_or_foreign_sidecar_does_not_verify() -> None:
    mine, theirs = SidecarSeal(b"a" * 32), SidecarSeal(b"b" * 32)
    assert not mine.verifies(SIDECAR)
    assert not mine.verifies(theirs.seal(SIDECAR))
    assert not mine.verifies({**SIDECAR, "seal": 12})
    assert not mine.verifies(None)


def test_the_key_is_made_once_private_and_read_back(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = load_seal_key(state)
    path = state / SEAL_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_seal_key(state) == key and len(key) == 32


def test_without_a_state_folder_each_process_has_its_own_key() -> None:
    assert load_seal_key(None) != load_seal_key(None)

"""Files the upload tests share: a file's signature now, and a watched folder beside one it must not leave."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers.images import png_bytes
from watcher.core.signature import FileSignature, signature_of


def current_signature(path: Path) -> FileSignature:
    return signature_of(os.stat(path, follow_symlinks=False))


def watched_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A watched `drop` with `sub/a.png` (PNG bytes seed 1) and an `outside` folder."""
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    (drop / "sub" / "a.png").write_bytes(png_bytes(1))
    outside = tmp_path / "outside"
    outside.mkdir()
    return drop, outside

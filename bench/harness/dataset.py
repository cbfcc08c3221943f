"""Done datasets: folders of images the agent uploaded long ago, each with its sealed sidecar, made fast.

The sidecars are the agent's format and seal re-implemented, so that the suite keeps using the agent
only as a process (bench/README.md, "How it measures": History).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .constants import ACCOUNT
from .context import Context
from .images import PNG_OVERHEAD, png_bytes

SEAL_KEY_FILE = "sidecar-seal.key"
SEALED_FIELDS = ("fileID", "ossPath", "account", "size", "sha256")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class DoneDataset:
    """Writes done images with sealed sidecars; `key` goes into each state folder that should trust them."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.key = secrets.token_bytes(32)
        self.count = 0  # images written so far; numbers each image's seed and fileID

    def install_key(self, state_dir: Path) -> None:
        """Give an agent's state folder the key these sidecars are sealed with (before the agent starts)."""
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / SEAL_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, self.key)
        finally:
            os.close(fd)

    def fill(self, folders: list[Path], per_folder: int) -> None:
        """Write `per_folder` done images, each with its sidecar, into each of the existing `folders`."""
        firsts = [self.count + k * per_folder for k in range(len(folders))]
        self.count += len(folders) * per_folder
        # Creating a file on ext4 is mostly kernel time, and slow for minutes after a mass deletion
        # (the inode allocator skips recently freed inodes one by one): threads overlap those system
        # calls with one another and with the Python work of the next file.
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(lambda folder, first: self._fill_folder(folder, per_folder, first), folders, firsts)
            )

    def _seal(self, sidecar: dict[str, object]) -> str:
        message = json.dumps(
            [sidecar[name] for name in SEALED_FIELDS], ensure_ascii=True, separators=(",", ":")
        )
        return hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()

    def _fill_folder(self, folder: Path, images: int, first: int) -> None:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for i in range(images):
                n = first + i + 1
                name = f"img-{i:05d}.png"
                data = png_bytes(f"{self.tag}-{n}", PNG_OVERHEAD + 32)
                fd = os.open(name, _CREATE, 0o644, dir_fd=dir_fd)
                try:
                    if os.write(fd, data) != len(data):
                        raise OSError(f"short write to {folder / name}")
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
                file_id = 390_000_000_000_000 + n
                sidecar: dict[str, object] = {
                    "fileID": f"user:1-minimax:{ACCOUNT}-file:{file_id}",
                    "ossPath": f"https://oss.example.invalid/{file_id}.png",
                    "account": ACCOUNT,
                    "file": name,
                    "size": st.st_size,
                    "mtime_ns": st.st_mtime_ns,
                    "ino": st.st_ino,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "contentType": "image/png",
                    "uploadedAt": "2026-01-01T00:00:00Z",
                }
                sidecar["seal"] = self._seal(sidecar)
                payload = (json.dumps(sidecar, ensure_ascii=True, indent=2) + "\n").encode()
                fd = os.open(name + ".json", _CREATE, 0o644, dir_fd=dir_fd)
                try:
                    if os.write(fd, payload) != len(payload):
                        raise OSError(f"short write to {folder / name}.json")
                finally:
                    os.close(fd)
        finally:
            os.close(dir_fd)


def remove(ctx: Context, paths: list[Path]) -> None:
    """Remove a dataset (not with --keep: its folders stay in the work folder with the logs)."""
    if ctx.keep:
        return
    paths = [p for p in paths if os.path.lexists(p)]
    subfolders = [e.path for p in paths for e in os.scandir(p) if e.is_dir(follow_symlinks=False)]
    # Unlinking is kernel time, minutes for a million files one by one: threads overlap it.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(shutil.rmtree, subfolders))
        list(pool.map(shutil.rmtree, paths))

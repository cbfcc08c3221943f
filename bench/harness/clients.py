"""Baseline clients, each run as its own process so that its time, CPU and peak RSS are its own.

    clients.py docs-recipe  BASE_URL LISTFILE   useapi.net's documented recipe, per file:
                                                requests.post(url, data=f.read()), no session
    clients.py session-loop BASE_URL LISTFILE   the transport limit for many small files: a bare loop
                                                of uploads over one persistent requests.Session
    clients.py done-walk    DIR...              the least work a start-up done-check can do: list each
                                                folder and its subfolders, stat each image, read its
                                                sidecar, compare size and mtime_ns
    clients.py walk         DIR...              the least work any start or rescan can do: list each
                                                folder and its subfolders, stat each image

LISTFILE holds one path per line. The token is $USEAPI_TOKEN. Prints one JSON line:
{"seconds", "cpu_seconds", "vmhwm_kb", "count", "failed"}.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Iterator


def _content_type(path: str) -> str:
    return "image/png" if path.lower().endswith(".png") else "image/jpeg"


def _vmhwm_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def docs_recipe(base_url: str, paths: list[str]) -> tuple[int, int]:
    import requests

    token = os.environ["USEAPI_TOKEN"]
    api_url = f"{base_url}/files/"
    failed = 0
    for path in paths:
        headers = {"Content-Type": _content_type(path), "Authorization": f"Bearer {token}"}
        with open(path, "rb") as file:
            file_content = file.read()
        response = requests.post(api_url, headers=headers, data=file_content)
        del file_content
        if response.status_code != 200 or "fileID" not in response.json():
            failed += 1
    return len(paths), failed


def session_loop(base_url: str, paths: list[str]) -> tuple[int, int]:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {os.environ['USEAPI_TOKEN']}"
    api_url = f"{base_url}/files/"
    failed = 0
    for path in paths:
        with open(path, "rb") as file:
            body = file.read()
        response = session.post(api_url, data=body, headers={"Content-Type": _content_type(path)})
        if response.status_code != 200 or "fileID" not in response.json():
            failed += 1
    session.close()
    return len(paths), failed


SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _images(folder: str) -> Iterator[os.DirEntry[str]]:
    """Every image under `folder`, subfolders included; dot-names are skipped, as the agent does."""
    with os.scandir(folder) as entries:
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
            elif entry.name.lower().endswith(SUFFIXES):
                yield entry
    for subfolder in subfolders:
        yield from _images(subfolder)


def walk(folders: list[str]) -> tuple[int, int]:
    count = 0
    for folder in folders:
        for entry in _images(folder):
            entry.stat(follow_symlinks=False)
            count += 1
    return count, 0


def done_walk(folders: list[str]) -> tuple[int, int]:
    count = pending = 0
    for folder in folders:
        for entry in _images(folder):
            st = entry.stat(follow_symlinks=False)
            count += 1
            try:
                with open(entry.path + ".json", "rb") as sidecar:
                    record = json.loads(sidecar.read())
            except (OSError, ValueError):
                pending += 1
                continue
            if record.get("size") != st.st_size or record.get("mtime_ns") != st.st_mtime_ns:
                pending += 1
    return count, pending


def main(argv: list[str]) -> int:
    command = argv[0]
    started = time.monotonic()
    if command in ("done-walk", "walk"):
        count, failed = (done_walk if command == "done-walk" else walk)(argv[1:])
    else:
        base_url, list_file = argv[1], argv[2]
        with open(list_file) as listing:
            paths = [line.rstrip("\n") for line in listing if line.strip()]
        started = time.monotonic()
        runner = {"docs-recipe": docs_recipe, "session-loop": session_loop}[command]
        count, failed = runner(base_url, paths)
    seconds = time.monotonic() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": _cpu(),
                "vmhwm_kb": _vmhwm_kb(),
                "count": count,
                "failed": failed,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`minimax-watcher status`: what each folder holds, read from the files themselves.

It needs no running agent: sidecars and error records beside the images are the state.
"""

from __future__ import annotations

import os
from typing import Any

from watcher.config import Config
from watcher.inventory import walk_candidates
from watcher.messages import FileState


def folder_report(config: Config) -> dict[str, Any]:
    folders = []
    for folder in config.folders:
        counts = {state: 0 for state in FileState}
        failures = []
        for found in walk_candidates(folder.path, folder.recursive, folder.account):
            counts[found.state] += 1
            if found.state is FileState.FAILED and found.record is not None:
                failures.append(
                    {
                        "file": os.path.relpath(found.path, folder.path),
                        "error": str(found.record.get("error", "")),
                    }
                )
        folders.append(
            {
                "path": folder.path,
                "account": folder.account,
                "uploaded": counts[FileState.DONE],
                "pending": counts[FileState.PENDING],
                "failed": counts[FileState.FAILED],
                "failures": sorted(failures, key=lambda f: f["file"]),
            }
        )
    return {"folders": folders}


def render_text(report: dict[str, Any]) -> str:
    lines = []
    for folder in report["folders"]:
        account = folder["account"] or "the token's only account"
        lines.append(
            f"{folder['path']}  (account {account})\n"
            f"  uploaded {folder['uploaded']}, pending {folder['pending']}, failed {folder['failed']}"
        )
        for failure in folder["failures"]:
            lines.append(f"  failed: {failure['file']}: {failure['error']}")
    return "\n".join(lines)

"""The effective config as `check-config` prints it: every default filled in, the token redacted."""

from __future__ import annotations

from typing import Any

from watcher.config.load import Config
from watcher.config.schema import HOOK_KEYS
from watcher.config.status_page import page_settings
from watcher.config.token import ResolvedToken
from watcher.core.video import VideoSettings


def describe_effective(config: Config, token: ResolvedToken | None) -> dict[str, Any]:
    """The effective config as plain data for `check-config`, token redacted."""
    s = config.settings
    return {
        "config": str(config.source),
        "api": {
            "base_url": s.api.base_url,
            "token": f"<redacted, from {token.source}>" if token else "<none found>",
        },
        "settle_seconds": s.settle_seconds,
        "concurrency": s.concurrency,
        "rescan_seconds": s.rescan_seconds,
        "metrics": {"listen": s.metrics.listen} if s.metrics.listen else "off",
        "status_page": _status_page(config),
        "hooks": (
            {
                **{hook: s.hooks.argv(hook) for hook in HOOK_KEYS if s.hooks.argv(hook)},
                "timeout_seconds": s.hooks.timeout_seconds,
            }
            if s.hooks.configured
            else "off"
        ),
        "folders": [
            {
                "path": f.path,
                "account": f.account,
                "recursive": f.recursive,
                "polling": f.polling,
                "media": sorted(f.media),
                "include": list(f.include),
                "exclude": list(f.exclude),
                "settle_seconds": f.settle_seconds if f.settle_seconds is not None else s.settle_seconds,
                "done_dir": f.done_dir,
                "failed_dir": f.failed_dir,
                "generate": _generate(f.generate),
            }
            for f in config.folders
        ],
    }


def _status_page(config: Config) -> dict[str, Any] | str:
    """The page's address, and whether it asks for a password (its file read and checked now)."""
    settings = page_settings(config)
    if settings is None:
        return "off"
    password = config.settings.status_page.password_file
    return {
        "listen": config.settings.status_page.listen,
        "password": f"<redacted, from {password}>"
        if settings.password is not None
        else "none (loopback only)",
    }


def _generate(video: VideoSettings | None) -> dict[str, Any] | str:
    if video is None:
        return "off"
    return {
        "model": video.model,
        "prompt": video.prompt,
        "params": video.params,
        "output_dir": video.output_dir,
        "max_jobs": video.max_jobs,
        "max_per_day": video.max_per_day,
        "poll_seconds": video.poll_seconds,
        "require_prompt_file": video.require_prompt_file,
    }

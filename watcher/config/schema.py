"""The config schema: every key with its type, bounds, default, description and example (a folder's
`generate` block in `watcher.config.generate`).

The single source of the config's documentation (`watcher.config.sample` renders it); loading and
resolving paths is `watcher.config.load`'s.
"""

from __future__ import annotations

import ipaddress
import unicodedata
import urllib.parse
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watcher.config.generate import GenerateSettings

DEFAULT_BASE_URL = "https://api.useapi.net/v1/minimax"


def abbreviated(text: str, limit: int = 300) -> str:
    """`text` cut in its middle when long: a 5,000-character path would bury the message."""
    return text if len(text) <= limit else f"{text[:200]}…{text[-80:]} ({len(text)} characters)"


MediaKind = Literal["image", "audio", "video"]


class ConfigError(Exception):
    """A configuration problem, with a message meant for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ApiSettings(_Strict):
    base_url: str = Field(
        DEFAULT_BASE_URL,
        description="The useapi.net MiniMax API the images are uploaded to; http:// or https://.",
    )
    token_file: str | None = Field(
        None,
        description=(
            "A file holding the token and nothing else, readable by its owner alone (chmod 600); a "
            "relative path is relative to the config file's folder. Or set $USEAPI_TOKEN, or hand the "
            "token to the service as the systemd credential useapi-token."
        ),
        examples=["/etc/minimax-watcher/token"],
    )
    token: str | None = Field(
        None,
        repr=False,
        description=(
            "The token itself, for single-user machines: refused unless the config file is readable "
            "by its owner alone (chmod 600)."
        ),
        examples=["user:12345-..."],
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if any(c.isspace() or unicodedata.category(c) == "Cc" for c in value):
            raise ValueError("must not contain spaces or control characters")
        try:
            parts = urllib.parse.urlsplit(value)
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError as exc:
            raise ValueError(f"is not a valid URL ({exc})") from None
        if not parts.hostname:
            raise ValueError("must name a host, e.g. https://api.useapi.net/v1/minimax")
        return value.rstrip("/")


class Listen(NamedTuple):
    """A parsed `metrics.listen`: the address to bind, without brackets, and the port."""

    host: str
    port: int


LISTEN_EXAMPLE = "127.0.0.1:9464"


def parse_listen(value: str) -> Listen:
    """`127.0.0.1:9464`, `0.0.0.0:9464` or `[::1]:9464` as a `Listen`; anything else is a ValueError.

    The host is an IP address, never a name: a name would make the service's start depend on a resolver
    being up, and could resolve to an address other than the one the operator meant to expose. An empty
    host (`:9464`) is refused rather than read as "every interface": exposing the metrics beyond this
    machine must be written out, as 0.0.0.0 or [::].
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(
            f"must be HOST:PORT with HOST an IP address, e.g. {LISTEN_EXAMPLE} (this machine only), "
            '0.0.0.0:9464 (every IPv4 interface) or "[::]:9464" (every interface)'
        )
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, not {port_text[:20]!r}")
    port = int(port_text)
    if host.startswith("[") and host.endswith("]"):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host[:60]!r} is not an IPv6 address in brackets, e.g. [::1]:9464") from None
        return Listen(str(address), port)
    if ":" in host:
        raise ValueError(f'an IPv6 address goes in brackets, e.g. "[::1]:9464", not {value[:80]!r}')
    try:
        ipv4 = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"the host must be an IP address such as 127.0.0.1, not {host[:60]!r}") from None
    return Listen(str(ipv4), port)


class MetricsSettings(_Strict):
    listen: str | None = Field(
        None,
        description=(
            "HOST:PORT where Prometheus scrapes http://HOST:PORT/metrics; HOST is an IP address: "
            "127.0.0.1 for this machine only, 0.0.0.0 for every IPv4 interface, an IPv6 address in "
            'brackets and quotes ("[::1]:9464"). Unset, no metrics are served.'
        ),
        examples=[LISTEN_EXAMPLE],
    )

    @field_validator("listen", mode="before")
    @classmethod
    def _host_and_port(cls, value: Any) -> Any:
        return listen_value(value, LISTEN_EXAMPLE)


def listen_value(value: Any, example: str) -> Any:
    """A `listen` key's value, checked with `parse_listen` (metrics.listen, status_page.listen)."""
    if isinstance(value, str):
        parse_listen(value)
    elif value is not None:
        # `listen: 9464` is a number to YAML, and `listen: 1:30` a sexagesimal one.
        raise ValueError(f"must be HOST:PORT as text, e.g. {example}, not {repr(value)[:40]}")
    return value


PAGE_LISTEN_EXAMPLE = "127.0.0.1:8765"


class StatusPageSettings(_Strict):
    listen: str | None = Field(
        None,
        description=(
            "HOST:PORT where the status page is served (http://HOST:PORT/), as metrics.listen. Unset, no "
            "page is served. Beyond 127.0.0.1 / [::1] it needs password_file."
        ),
        examples=[PAGE_LISTEN_EXAMPLE],
    )
    password_file: str | None = Field(
        None,
        description=(
            "A file holding the page's password (HTTP Basic, any user name), readable by its owner alone "
            "(chmod 600); relative to the config file's folder. Required when listen is beyond loopback."
        ),
        examples=["/etc/minimax-watcher/page-password"],
    )

    @field_validator("listen", mode="before")
    @classmethod
    def _host_and_port(cls, value: Any) -> Any:
        return listen_value(value, PAGE_LISTEN_EXAMPLE)

    @model_validator(mode="after")
    def _password_beyond_loopback(self) -> StatusPageSettings:
        if self.listen is not None and self.password_file is None:
            host = parse_listen(self.listen).host
            if not ipaddress.ip_address(host).is_loopback:
                raise ValueError(
                    f"listen {self.listen} is reachable from other machines: add password_file (a file "
                    "holding the page's password, chmod 600), or listen on 127.0.0.1"
                )
        return self


HOOK_KEYS = ("on_upload", "on_failure", "on_attention", "on_video")


class HooksSettings(_Strict):
    on_upload: list[str] | None = Field(
        None,
        min_length=1,
        description=(
            "Run after each sidecar is written (also for a reused fileID): the program and its "
            "arguments, run without a shell. The program is an absolute path, a path relative to the "
            "config file's folder (./hooks/next-step), or a command name without a slash, looked up on "
            "$PATH when the config is loaded."
        ),
        examples=[["/usr/local/bin/next-step", "--flag"]],
    )
    on_failure: list[str] | None = Field(
        None,
        min_length=1,
        description="Run after each error record is written; an argv list, as on_upload.",
        examples=[["/usr/local/bin/alert"]],
    )
    on_attention: list[str] | None = Field(
        None,
        min_length=1,
        description=(
            "Run when an account pauses or resumes and when a folder cannot be written; an argv list, "
            "as on_upload."
        ),
        examples=[["/usr/local/bin/page-someone"]],
    )
    on_video: list[str] | None = Field(
        None,
        min_length=1,
        description=(
            "Run after a generated video is on disk (a folder's generate block): MINIMAX_VIDEO is its "
            "path, MINIMAX_VIDEO_ID its videoId, the video record comes on stdin; an argv list, as "
            "on_upload."
        ),
        examples=[["/usr/local/bin/publish-video"]],
    )
    timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description=(
            "A hook still running after this many seconds is killed (its whole process group) and "
            "counts as failed."
        ),
    )

    pass_proxy: bool = Field(
        False,
        description=(
            "Give hooks the agent's proxy variables (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY, any "
            "case), proxy password included. Off: a hook gets none of them. Never the token."
        ),
    )

    @field_validator(*HOOK_KEYS, mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            # `on_upload: /usr/bin/x --flag` would need a shell to split it; the agent runs none.
            raise ValueError(
                "must be a list, the program and its arguments, e.g. [/usr/local/bin/next-step, --flag]; "
                "it is run without a shell"
            )
        return value

    @field_validator(*HOOK_KEYS)
    @classmethod
    def _argv(cls, argv: list[str] | None) -> list[str] | None:
        if argv is None:
            return None
        for word in argv:
            if not word or "\0" in word:
                raise ValueError("each word of the command must be non-empty text without NUL characters")
        return argv

    def argv(self, hook: str) -> list[str] | None:
        """The command configured for `hook` (one of `HOOK_KEYS`), or None."""
        value: list[str] | None = getattr(self, hook)
        return value

    @property
    def configured(self) -> bool:
        return any(self.argv(hook) for hook in HOOK_KEYS)


class FolderSettings(_Strict):
    path: str = Field(
        description=(
            "A folder to watch; it must exist. A relative path is relative to the config file's folder."
        ),
        examples=["/srv/drop/alice"],
    )
    account: str | None = Field(
        None,
        description=(
            "The numeric MiniMax account id configured on useapi.net, in quotes; may be left out when "
            "the token has exactly one MiniMax account."
        ),
        examples=["123456"],
    )
    recursive: bool = Field(
        False, description="Also watch its subfolders, including ones created or moved in later."
    )
    polling: bool = Field(
        False,
        description=(
            "Look for changes once a second instead of asking inotify: for NFS, SMB and FUSE mounts, "
            "where inotify sees nothing. A poll lists again only the directories whose stamp moved; a file "
            "rewritten in place is seen at the next full listing (every rescan_seconds)."
        ),
    )
    media: list[MediaKind] = Field(
        ["image"],
        min_length=1,
        description=(
            "Which kinds of file to upload: image (PNG, JPEG, WebP), audio (MP3, WAV), video (MP4). A file "
            "of a kind not listed is not a candidate at all."
        ),
    )
    include: list[str] = Field(
        ["**"],
        description=(
            "Globs on the file's path relative to the folder (sub/a.png), matched whole; only matching "
            "files are candidates. `*` and `?` match within one name, so in a recursive folder `*.png` "
            "matches the top level only (unlike gitignore and rclone); `**/*.png` matches at any depth, "
            "`renders/**` everything below renders/. `scan --dry-run` says which glob left a file out."
        ),
        examples=[["**/*.png", "renders/**"]],
    )
    exclude: list[str] = Field(
        [],
        description=(
            "Globs on the path relative to the folder, as include; a matching file is never a candidate, "
            "whatever include says (`**/*_preview.*` at any depth, `tmp/**` below tmp/)."
        ),
        examples=[["**/*_preview.*"]],
    )
    settle_seconds: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="This folder's own settle time, instead of the top-level settle_seconds.",
        examples=[10],
    )
    done_dir: str | None = Field(
        None,
        description=(
            "Once its sidecar is written, a file and its sidecar move here, keeping their path below the "
            "folder (a taken name gets -1, -2... before its extension). Relative to the folder, or "
            "absolute; on the same filesystem as the folder. Never watched, even inside the folder."
        ),
        examples=["done"],
    )
    failed_dir: str | None = Field(
        None,
        description=("A file that can never be uploaded moves here with its error record, as done_dir does."),
        examples=["failed"],
    )
    generate: GenerateSettings | None = Field(
        None,
        description=(
            "Turn each image uploaded here into a video (see docs/videos.md): "
            "asked for from videos/create once its sidecar is written, polled, downloaded into "
            "output_dir and recorded in <image>.video.json. Each video spends credits. Unset: no videos."
        ),
    )

    @field_validator("include", "exclude")
    @classmethod
    def _relative_globs(cls, globs: list[str]) -> list[str]:
        for glob in globs:
            if not glob or glob.startswith("/") or "\0" in glob:
                raise ValueError(
                    f"{glob!r}: a glob on the path relative to the folder, e.g. renders/**/*.png"
                )
            if any(part == ".." for part in glob.split("/")):
                raise ValueError(f"{glob!r}: `..` cannot match anything inside the folder")
        return globs

    @field_validator("media")
    @classmethod
    def _no_repeats(cls, kinds: list[MediaKind]) -> list[MediaKind]:
        if len(set(kinds)) != len(kinds):
            raise ValueError("lists a kind twice")
        return kinds

    @field_validator("account", mode="before")
    @classmethod
    def _account_is_quoted_digits(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(
                'must be a quoted string, e.g. account: "123456": YAML reads unquoted digits as a number '
                "(and a leading 0 as octal), so write the id exactly as useapi.net shows it, in quotes"
            )
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError('must be the numeric MiniMax account id, e.g. "123456"')
        return value.strip() if isinstance(value, str) else value


class Settings(_Strict):
    api: ApiSettings = Field(ApiSettings(), description="Where to upload, and with which token.")
    settle_seconds: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="A file is ready once its size and mtime have held still this long, in seconds.",
    )
    concurrency: int = Field(4, ge=1, le=64, description="Uploads in flight, all folders together.")
    rescan_seconds: float = Field(
        300.0,
        ge=1,
        description=(
            "Every folder is rescanned this often, in seconds, for what inotify missed (its queue can "
            "overflow, and network filesystems send nothing)."
        ),
    )
    metrics: MetricsSettings = Field(
        MetricsSettings(),
        description=(
            "Prometheus metrics (see docs/monitoring.md); off unless listen is set. Counters "
            "count from the agent's start and go on across reloads."
        ),
    )
    status_page: StatusPageSettings = Field(
        StatusPageSettings(),
        description=(
            "A read-only status page for a browser (see docs/monitoring.md): counts, accounts, uploads "
            "with thumbnails and fileIDs, videos; off unless listen is set. It never shows the token and "
            "serves only files that have a sidecar."
        ),
    )
    hooks: HooksSettings = Field(
        HooksSettings(),
        description=(
            "Programs run after the fact, never before the sidecar or error record is on disk: one "
            "process per event, at most `concurrency` at once, with MINIMAX_* variables and the record "
            "as JSON on stdin (see docs/hooks.md); never given the token. A hook that fails "
            "or times out is retried, up to 5 attempts; pending runs survive a restart, so a hook may "
            "run twice for one event and must tolerate that."
        ),
    )
    folders: list[FolderSettings] = Field(
        min_length=1, description="The drop folders, each listed once and none inside another."
    )

    @field_validator("metrics", "status_page", "hooks", mode="before")
    @classmethod
    def _empty_section_is_off(cls, value: Any) -> Any:
        # `metrics:` or `hooks:` with every key under it commented out is YAML's null: off, as when absent.
        return {} if value is None else value

"""Which API user and endpoint a fileID belongs to (SPEC §6).

useapi.net names the user in the token (`user:<id>-…`) and in every fileID (`user:<id>-minimax:…`); a
fileID is useless to another user (another token's, the emulator's) and to another base URL. So a
sidecar counts as done, and lends its fileID, only for the owner it was made for: its fileID's user
against the token's, and the base URL it records against the configured one. Sidecars written before
the base URL was recorded are judged by their fileID's user, and by their ossPath: one on this
machine's loopback was the emulator's, and is not done for an API elsewhere.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

BASE_URL_KEY = "baseUrl"
_USER = re.compile(r"user:([^-\s]{1,64})-")


def user_of(text: object) -> str | None:
    """The `<id>` of a token or fileID that starts `user:<id>-`; None for any other shape."""
    if not isinstance(text, str):
        return None
    match = _USER.match(text)
    return match.group(1) if match else None


def normalized_base_url(url: str) -> str:
    """The base URL as compared and recorded: scheme and host in lower case, no credentials, no
    trailing slash (a password in a URL must never reach a sidecar)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url.strip().rstrip("/")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def on_loopback(url: object) -> bool:
    if not isinstance(url, str):
        return False
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ApiOwner:
    """An API user at a base URL; `user` None when unknown (no token: `scan --dry-run`, `status`)."""

    base_url: str
    user: str | None

    @classmethod
    def of(cls, base_url: str, token: str | None) -> ApiOwner:
        return cls(normalized_base_url(base_url), user_of(token) if token is not None else None)

    @property
    def key(self) -> str:
        """What the index records it was made for (a hash: the state folder names no user)."""
        return hashlib.sha256(f"{self.user}\n{self.base_url}".encode()).hexdigest()[:32]

    def describe(self) -> str:
        user = f"user {self.user}" if self.user is not None else "any user (no token to tell)"
        return f"{user} at {self.base_url}"

    def owns(self, sidecar: dict[str, Any]) -> bool:
        """Whether the sidecar's fileID belongs to this user at this base URL."""
        if self.user is not None and user_of(sidecar.get("fileID")) != self.user:
            return False
        recorded = sidecar.get(BASE_URL_KEY)
        if recorded is not None:
            return isinstance(recorded, str) and normalized_base_url(recorded) == self.base_url
        # Written before the base URL was recorded: an ossPath on loopback was the emulator's.
        return on_loopback(self.base_url) or not on_loopback(sidecar.get("ossPath"))


def owner_for_reading(base_url: str, find_token: Callable[[], str | None]) -> ApiOwner:
    """The owner `status` and `scan --dry-run` judge sidecars for: they need no token, so without one
    (or with one that cannot be read) only the base URL is compared (`ApiOwner.user` is None)."""
    try:
        token = find_token()
    except Exception:  # a token they cannot read is no reason to refuse to look
        token = None
    return ApiOwner.of(base_url, token)


def assumption(owner: ApiOwner) -> str | None:
    """What a reader without a token assumed, to say beside its counts; None when nothing was."""
    if owner.user is not None:
        return None
    return (f"no API token found: sidecars were judged by the base URL ({owner.base_url}) only; a "
            "fileID of another user at the same URL would count as done here")  # fmt: skip

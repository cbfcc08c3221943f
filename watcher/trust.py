"""Which sidecars the agent wrote itself: an HMAC seal, keyed by a secret in the state folder.

A sidecar only lends its fileID to other files (dedupe) when this agent wrote it: anyone who can write
to one folder of an account could otherwise plant `decoy.png` plus a sidecar claiming a victim image's
sha256, and the victim's image would get a fake fileID without ever being uploaded. The seal covers
what dedupe trusts (fileID, ossPath, account, size, sha256); a sidecar without a valid seal (planted,
edited, or written before seals existed) still marks its own file done, but never another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SEAL_KEY = "seal"
SEALED_FIELDS = ("fileID", "ossPath", "account", "size", "sha256")


class SidecarSeal:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a seal key needs at least 16 bytes")
        self._key = key

    def _mac(self, sidecar: dict[str, Any]) -> str:
        fields = [sidecar.get(name) for name in SEALED_FIELDS]
        message = json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def seal(self, sidecar: dict[str, Any]) -> dict[str, Any]:
        """`sidecar` with its seal added."""
        return {**sidecar, SEAL_KEY: self._mac(sidecar)}

    def verifies(self, sidecar: dict[str, Any] | None) -> bool:
        if sidecar is None:
            return False
        seal = sidecar.get(SEAL_KEY)
        return isinstance(seal, str) and hmac.compare_digest(seal, self._mac(sidecar))

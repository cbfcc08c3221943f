"""What the emulator remembers of each upload request."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["RecordedRequest"]


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request that reached the upload handler.

    ``account`` is the resolved account (the query parameter, or the only configured account when it was
    omitted; the raw parameter when it was rejected). ``content_type`` is the header as sent. ``size`` is
    the number of body bytes received. ``sha256`` is the hex digest of the whole body, None when the body
    was not fully received (reset, client disconnect), was not read (rejected request without a valid
    length) or was not hashed (an emulator made with ``hash_bodies=False``). ``status`` is the HTTP status
    answered, 0 when no answer was sent. ``fault`` is the injected fault kind, ``"client_disconnected"``
    when the client went away mid-body, else None.
    """

    account: str | None
    content_type: str | None
    size: int
    sha256: str | None
    status: int
    file_id: str | None
    fault: str | None
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def is_upload(self) -> bool:
        """A successful upload: a 200 answer that carried a fileID."""
        return self.status == 200 and self.file_id is not None

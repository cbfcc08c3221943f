"""Faults: the misbehaviours a test can ask the emulator for, and their parsing from JSON."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Final, Literal, cast

__all__ = ["FAULT_KINDS", "Fault", "FaultKind"]

FaultKind = Literal["status", "reset", "slow", "no_file_id", "non_json"]
FAULT_KINDS: Final[frozenset[str]] = frozenset(typing.get_args(FaultKind))


@dataclasses.dataclass
class Fault:
    """A misbehaviour to inject into upcoming upload requests.

    ``kind``:
      * ``"status"`` -- answer ``status`` (400-599) with ``{"error": ..., "code": status}``;
      * ``"reset"`` -- read about half of the body, then close the connection with a TCP RST, no answer;
      * ``"slow"`` -- read the body, wait ``delay`` seconds, then answer normally (success);
      * ``"no_file_id"`` -- 200 with ``{"ossPath": ...}`` only;
      * ``"non_json"`` -- 200 with ``<html>oops</html>`` as ``text/html``.

    ``delay`` also holds back the answer of ``status``, ``no_file_id`` and ``non_json`` faults.
    ``retry_after`` is sent as a ``Retry-After`` header on the answer when set. ``times`` is how many
    matching requests the fault applies to (-1: until cleared). ``account`` restricts it to requests for
    that account (after the default account is resolved); None matches any. Faults are consumed in FIFO
    order; the first matching one wins. Faults only apply to requests that would otherwise succeed
    (valid token, content type, length and account).
    """

    kind: FaultKind
    status: int = 0
    retry_after: str | None = None
    delay: float = 0.0
    times: int = 1
    account: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}, expected one of {sorted(FAULT_KINDS)}")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"a 'status' fault needs a status between 400 and 599, got {self.status}")
        if self.times == 0 or self.times < -1:
            raise ValueError(f"times must be a positive count or -1 (forever), got {self.times}")
        if self.delay < 0:
            raise ValueError(f"delay must not be negative, got {self.delay}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from JSON-like data, checking names and types (raises ValueError)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        if "kind" not in data:
            raise ValueError("a fault needs a 'kind'")
        kind = data["kind"]
        if not isinstance(kind, str) or kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}, expected one of {sorted(FAULT_KINDS)}")
        status = data.get("status", 0)
        times = data.get("times", 1)
        delay = data.get("delay", 0.0)
        for name, value in (("status", status), ("times", times)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"fault field {name!r} must be an integer, got {value!r}")
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise ValueError(f"fault field 'delay' must be a number, got {delay!r}")
        retry_after = data.get("retry_after")
        account = data.get("account")
        for name, value in (("retry_after", retry_after), ("account", account)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
                raise ValueError(f"fault field {name!r} must be a string or null, got {value!r}")
        return cls(
            kind=cast(FaultKind, kind),
            status=status,
            retry_after=None if retry_after is None else str(retry_after),
            delay=float(delay),
            times=times,
            account=None if account is None else str(account),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def applies_to(self, account: str) -> bool:
        return self.account is None or self.account == account

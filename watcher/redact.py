r"""One redaction for every text that leaves the process: log records, STATUS=, error strings.

Besides each registered value, the forms other code quotes it in are registered too (`repr()`, JSON, the
log filter's `\xNN` escapes) and, for a value of several lines or words, each piece on its own.
"""

from __future__ import annotations

import json
import re
import threading

REPLACEMENT = "<redacted>"
# Shorter strings would turn ordinary words into noise, and no useapi.net token is that short.
MIN_SECRET_LENGTH = 4
_SEPARATORS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")

_lock = threading.Lock()
# Longest first, so that a secret containing another is replaced whole. Replaced, never mutated:
# `redact` reads it without the lock, from any thread.
_secrets: tuple[str, ...] = ()
_withheld: tuple[str, ...] = ()  # those of them never handed to a hook (see `register_secret`)


# Unicode's bidirectional controls (embeddings, overrides, isolates, marks): shown raw, U+202E makes a
# terminal print `gnp.exe` for `exe.png`.
BIDI_CONTROL = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Checked on every argument of every log line.
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape_control(text: str) -> str:
    """`text` with every C0 control character and DEL as `\\xNN`, and every bidi control as `\\uNNNN`:
    a log line cannot be split, forged or reordered."""
    return CONTROL_CHARACTER.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def has_control(text: str) -> bool:
    return CONTROL_CHARACTER.search(text) is not None


def register_secret(value: str, *, passable: bool = False) -> None:
    """From now on `redact` removes `value` (and the forms it is quoted in) wherever it appears.

    `passable`: a secret the operator may let a program the agent starts have (a proxy password, with
    `hooks.pass_proxy`); any other (the token) is withheld from every one (`withheld_in`).
    """
    global _secrets, _withheld
    forms = {form for form in _quoted_forms(value) if len(form) >= MIN_SECRET_LENGTH}
    if not forms:
        return
    with _lock:
        _secrets = tuple(sorted(set(_secrets) | forms, key=len, reverse=True))
        if not passable:
            _withheld = tuple(sorted(set(_withheld) | forms, key=len, reverse=True))


def withheld_in(text: str) -> bool:
    """Whether `text` holds a secret that no program the agent starts may be given (the token)."""
    return any(secret in text for secret in _withheld)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `<redacted>`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REPLACEMENT)
    return text


def _quoted_forms(value: str) -> set[str]:
    pieces = [value, *(p for p in _SEPARATORS.split(value) if p)]
    forms: set[str] = set()
    for piece in pieces:
        forms.update(
            {
                piece,
                repr(piece)[1:-1],
                json.dumps(piece)[1:-1],
                json.dumps(piece, ensure_ascii=False)[1:-1],
                escape_control(piece),
            }
        )
    return forms

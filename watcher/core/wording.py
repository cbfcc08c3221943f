"""Counts and sizes as people read them: "1 file", "2 files", "0 B", "69 B", "1.5 MB" (no I/O)."""

from __future__ import annotations

_UNITS = ("B", "KB", "MB", "GB", "TB")
_IRREGULAR = {"is": "are", "was": "were", "has": "have", "it": "they", "its": "their", "this": "these"}


def plural(noun: str) -> str:
    if noun in _IRREGULAR:
        return _IRREGULAR[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def count(n: int, noun: str) -> str:
    """`n` and `noun`, singular for exactly one: count(1, "file") is "1 file", count(0, "file") "0 files"."""
    return f"{n} {noun if n == 1 else plural(noun)}"


def size(n_bytes: int | float) -> str:
    """A size in the largest unit that keeps it at least 1 (decimal units, as `ls --si` and the
    docs/files.md's 5 GB limit): whole bytes, else one decimal ("512 B", "1.5 KB", "4.2 MB", "5.0 GB")."""
    value = float(max(n_bytes, 0))
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    if unit == 0:
        return f"{int(value)} B"
    if round(value, 1) >= 1000 and unit < len(_UNITS) - 1:  # 999.96 KB rounds to 1000.0: say 1.0 MB
        value /= 1000
        unit += 1
    return f"{value:.1f} {_UNITS[unit]}"

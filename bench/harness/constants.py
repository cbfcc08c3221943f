"""What every part of the suite shares: where it lives, the credentials the emulator accepts."""

from __future__ import annotations

from pathlib import Path

HARNESS = Path(__file__).resolve().parent
BENCH = HARNESS.parent
REPO = BENCH.parent
TOKEN = "user:1-benchDONOTLEAK"
ACCOUNT = "123456"

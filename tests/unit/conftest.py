from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import clear_secrets


@pytest.fixture(autouse=True)
def no_secrets_left() -> Iterator[None]:
    """Resolving a token (or a test) registers secrets for redaction, process-wide: each unit test starts
    and ends without."""
    clear_secrets()
    yield
    clear_secrets()

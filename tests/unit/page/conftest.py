"""The page's unit tests share `site` (tests/helpers/page.py)."""

from tests.helpers.page import site  # noqa: F401 (a fixture)

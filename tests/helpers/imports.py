"""What a package's modules import, read from their source (imports under TYPE_CHECKING included)."""

from __future__ import annotations

import ast
from pathlib import Path

import watcher

ROOT = Path(watcher.__file__).parent


def imports_of(package: str) -> dict[str, set[str]]:
    """Each module of `package` (e.g. "watcher.disk") → the `watcher.` modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package.removeprefix("watcher.").replace(".", "/")).glob("*.py")):
        module = f"{package}.{path.stem}"
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[module] = {name for name in names if name.startswith("watcher.")}
    return found

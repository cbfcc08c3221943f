"""The config's JSON Schema: printed by `check-config --json-schema` without a config, shipped as
docs/config.schema.json, named by config.yaml's first line, and taking what the loader takes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tests.helpers.config_files import check_config_alone
from watcher.config.json_schema import config_json_schema, render_json_schema
from watcher.config.schema import FolderSettings, Settings

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "docs" / "config.schema.json"
# What a keyword says about a value only as documentation.
ANNOTATIONS = {"title", "description", "default", "examples", "$schema"}


def problems(
    schema: dict[str, Any], value: Any, root: dict[str, Any] | None = None, at: str = ""
) -> list[str]:
    """`value` checked against the subset of JSON Schema that pydantic writes; [] when valid.

    The `jsonschema` package is not among the test dependencies. A keyword outside that subset fails the
    test, so the check never passes by ignoring a rule it does not know.
    """
    root = root if root is not None else schema
    found: list[str] = []
    for keyword, rule in schema.items():
        if keyword in ANNOTATIONS or keyword == "$defs":
            continue
        if keyword == "$ref":
            found += problems(root["$defs"][rule.removeprefix("#/$defs/")], value, root, at)
        elif keyword == "anyOf":
            if all(problems(option, value, root, at) for option in rule):
                found.append(f"{at}: {value!r} matches none of {rule}")
        elif keyword == "type":
            if not _is_type(value, rule):
                found.append(f"{at}: {value!r} is not of type {rule}")
        elif keyword == "enum":
            if value not in rule:
                found.append(f"{at}: {value!r} is not one of {rule}")
        elif keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if _is_type(value, "number") and not _within(keyword, value, rule):
                found.append(f"{at}: {value!r} breaks {keyword} {rule}")
        elif keyword in ("minItems", "maxItems", "minLength", "maxLength"):
            if isinstance(value, list | str) and not _within(keyword, len(value), rule):
                found.append(f"{at}: {value!r} breaks {keyword} {rule}")
        elif keyword == "items":
            for index, item in enumerate(value if isinstance(value, list) else []):
                found += problems(rule, item, root, f"{at}[{index}]")
        elif keyword == "required":
            missing = [key for key in rule if isinstance(value, dict) and key not in value]
            found += [f"{at}: {key} is required" for key in missing]
        elif keyword == "properties":
            for key, sub in rule.items():
                if isinstance(value, dict) and key in value:
                    found += problems(sub, value[key], root, f"{at}.{key}")
        elif keyword == "additionalProperties":
            extra = (
                [k for k in value if k not in schema.get("properties", {})] if isinstance(value, dict) else []
            )
            if rule is False:
                found += [f"{at}: {key} is not a key here" for key in extra]
            elif rule is not True:
                found += [p for key in extra for p in problems(rule, value[key], root, f"{at}.{key}")]
        else:
            raise AssertionError(f"the test's checker does not know the keyword {keyword!r}: teach it")
    return found


def _is_type(value: Any, name: str) -> bool:
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    types = {"string": str, "boolean": bool, "array": list, "object": dict, "null": type(None)}
    return isinstance(value, types[name])


def _within(keyword: str, value: float, limit: float) -> bool:
    if keyword.startswith("exclusiveMin"):
        return value > limit
    if keyword.startswith("exclusiveMax"):
        return value < limit
    return value >= limit if keyword.startswith("min") else value <= limit


def loader_takes(data: dict[str, Any]) -> bool:
    try:
        Settings.model_validate(data)
    except ValidationError:
        return False
    return True


def shipped_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    return data


# ---- what is printed and shipped ------------------------------------------------------------------------


def test_check_config_json_schema_prints_it_without_any_config(tmp_path: Path) -> None:
    result = check_config_alone(tmp_path, "--json-schema")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout) == config_json_schema()


def test_docs_config_schema_json_is_the_rendered_schema() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == render_json_schema(), (
        "docs/config.schema.json has drifted: `minimax-watcher check-config --json-schema > docs/config.schema.json`"
    )


def test_config_yaml_names_the_schema_on_its_first_line() -> None:
    first = (REPO / "config.yaml").read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match is not None, first
    assert (REPO / match.group(1)).resolve() == SHIPPED  # relative to config.yaml's folder


def test_every_key_has_its_description_and_default() -> None:
    schema = config_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    folder = schema["$defs"]["FolderSettings"]["properties"]
    assert folder["recursive"] == {
        "default": False,
        "description": FolderSettings.model_fields["recursive"].description,
        "title": "Recursive",
        "type": "boolean",
    }
    for name, definition in [("Settings", schema), *schema["$defs"].items()]:
        for key, prop in definition["properties"].items():
            assert prop.get("description"), f"{name}.{key} has no description"
    concurrency = schema["properties"]["concurrency"]
    assert (concurrency["minimum"], concurrency["maximum"], concurrency["default"]) == (1, 64, 4)


# ---- it takes what the loader takes ---------------------------------------------------------------------


def test_the_shipped_config_yaml_is_valid() -> None:
    data = shipped_config()
    assert problems(config_json_schema(), data) == []
    assert loader_takes(data)
    assert "metrics" in data and data["metrics"] is None  # `metrics:` with its keys commented out


def _with(change: dict[str, Any], folder: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"folders": [{"path": "/srv/drop/alice", **(folder or {})}], **change}


@pytest.mark.parametrize(
    "data",
    [
        # What an editor's YAML 1.2 parser reads from `recursive: yes`: text, not a boolean.
        _with({}, {"recursive": "yes"}),
        _with({}, {"media": ["image", "photo"]}),
        _with({}, {"settle_seconds": 0}),
        _with({}, {"generate": {"prompt": "no model"}}),
        _with({"concurrency": 65}),
        _with({"concurrency": 2.5}),
        _with({"settle_seconds": "2"}),
        _with({"hooks": {"on_upload": []}}),
        _with({"metrics": {"listen": None, "port": 9464}}),
        _with({"folder": []}),
        _with({"api": None}),
        {"folders": []},
        {},
    ],
    ids=lambda data: json.dumps(data)[:60],
)
def test_what_the_loader_refuses_the_schema_refuses(data: dict[str, Any]) -> None:
    assert not loader_takes(data)
    assert problems(config_json_schema(), data) != []


@pytest.mark.parametrize(
    "data",
    [
        _with({"metrics": None, "hooks": None}),
        _with({"hooks": {"on_upload": ["/usr/local/bin/x", "--flag"], "timeout_seconds": 5}}),
        _with({"settle_seconds": 1, "concurrency": 64}, {"recursive": True, "generate": None}),
        _with({}, {"generate": {"model": "I2V-2.3", "params": {"options": "768p-6sec"}}}),
    ],
    ids=lambda data: json.dumps(data)[:60],
)
def test_what_the_loader_takes_the_schema_takes(data: dict[str, Any]) -> None:
    assert loader_takes(data)
    assert problems(config_json_schema(), data) == []

"""The config's JSON Schema, from the one schema (`watcher.config.schema`), for editors that complete and
check config.yaml (`check-config --json-schema`, shipped as docs/config.schema.json)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from watcher.config.schema import Settings

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# The smallest config the schema takes, to ask it how it reads a value.
_SMALLEST = {"folders": [{"path": "/srv/drop/alice"}]}


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file, every key with its description, default, bounds and example."""
    body = Settings.model_json_schema()
    for name in Settings.model_fields:
        prop = body["properties"][name]
        # `metrics:` with every key under it commented out is YAML's null, which the schema reads as the
        # section left out: an editor must not flag what the agent takes.
        if "$ref" in prop and _null_is_the_default(name):
            prop["anyOf"] = [{"$ref": prop.pop("$ref")}, {"type": "null"}]
    return {
        "$schema": DIALECT,
        "title": "minimax-watcher config",
        "description": "config.yaml of minimax-watcher; `minimax-watcher help config` explains each key.",
        **{k: v for k, v in body.items() if k != "title"},
    }


def render_json_schema() -> str:
    return json.dumps(config_json_schema(), indent=2, ensure_ascii=False) + "\n"


def _null_is_the_default(name: str) -> bool:
    default = Settings.model_fields[name].default
    if not isinstance(default, BaseModel):
        return False
    try:
        settings = Settings.model_validate({**_SMALLEST, name: None})
    except ValidationError:
        return False
    return bool(getattr(settings, name) == default)

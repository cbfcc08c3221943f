"""The commented sample config, rendered from the schema (`watcher.config.schema`), so that
`check-config --sample`, docs/config.md and `config.yaml` cannot drift from what the agent
accepts.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from watcher.config.load import Settings

SAMPLE_WIDTH = 100


def render_sample(values: Mapping[str, Any] | None = None, *, schema: type[BaseModel] = Settings) -> str:
    """The whole schema as commented YAML: each key's description, its default or bounds, a value.

    A key with a default shows it; an optional key without one shows its example, commented out; a
    required key shows its example. `values` puts another value in, by dotted key (`folders.path`).
    The result is a valid config once its folders exist.
    """
    lines: list[str] = []
    _render_model(schema, lines, indent="", path="", values=values or {})
    return "\n".join(lines) + "\n"


def _render_model(
    model: type[BaseModel],
    lines: list[str],
    *,
    indent: str,
    path: str,
    values: Mapping[str, Any],
    list_item: bool = False,
    commented: bool = False,
) -> None:
    # `commented`: the whole block is shown commented out (an optional section left unset).
    mark = "# " if commented else ""
    for index, (name, field) in enumerate(model.model_fields.items()):
        key = path + name
        if index > 0:
            lines.append("")
        # The first key of a list item carries the "- "; its comments stand at the dash's column.
        if list_item and index == 0:
            comment_indent, key_prefix = indent[:-2], indent[:-2] + "- "
        else:
            comment_indent, key_prefix = indent, indent
        if field.description is None:
            raise TypeError(f"config key {key} has no description")
        lines.extend(_comment(field.description, comment_indent))
        nested = _model_or_none(field.annotation)
        if nested is not None:
            lines.append(f"{key_prefix}{mark}{name}:")
            _render_model(
                nested, lines, indent=indent + "  ", path=key + ".", values=values, commented=commented
            )
            continue
        optional = _optional_model(field)
        if optional is not None:
            # Unset by default: shown commented out, unless `values` fills in one of its keys.
            off = commented or not any(k.startswith(key + ".") for k in values)
            lines.append(f"{key_prefix}{'# ' if off else ''}{name}:  # {requirement(field, None)}")
            _render_model(optional, lines, indent=indent + "  ", path=key + ".", values=values, commented=off)
            continue
        item = _list_item_model(field)
        if item is not None:
            lines.append(f"{key_prefix}{mark}{name}:  # {requirement(field, None)}")
            _render_model(
                item,
                lines,
                indent=indent + "    ",
                path=key + ".",
                values=values,
                list_item=True,
                commented=commented,
            )
            continue
        value, unset = _sample_value(key, field, values)
        line = f"{name}: {yaml_scalar(value)}  # {requirement(field, value)}"
        lines.append(f"{key_prefix}# {line}" if unset or commented else f"{key_prefix}{line}")


def config_keys(schema: type[BaseModel] = Settings, path: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every key of the schema, depth first, as a dotted name (`folders[].generate.model`) and its field."""
    for name, field in schema.model_fields.items():
        key = path + name
        yield key, field
        nested = _model_or_none(field.annotation) or _optional_model(field)
        if nested is not None:
            yield from config_keys(nested, key + ".")
        elif (item := _list_item_model(field)) is not None:
            yield from config_keys(item, key + "[].")


def _sample_value(key: str, field: FieldInfo, values: Mapping[str, Any]) -> tuple[Any, bool]:
    if key in values:
        return values[key], False
    if not field.is_required() and field.default is not None:
        return field.default, False
    if not field.examples:
        raise TypeError(f"config key {key} has neither a default nor an example")
    return field.examples[0], not field.is_required()


def requirement(field: FieldInfo, shown: Any = None) -> str:
    """`default 2; > 0, <= 3600`, `optional`, `required; at least 1`: read from the field itself.

    A default the line already shows as its value is not repeated.
    """
    if field.is_required():
        head = "required"
    elif field.default is None:
        head = "optional"
    elif shown == field.default and type(shown) is type(field.default):
        head = "default"
    else:
        head = f"default {yaml_scalar(field.default)}"
    bounds = [_bound(constraint) for constraint in field.metadata]
    return "; ".join([head, ", ".join(bounds)] if bounds else [head])


def _bound(constraint: Any) -> str:
    match constraint:
        case annotated_types.Gt(gt=limit):
            return f"> {yaml_scalar(limit)}"
        case annotated_types.Ge(ge=limit):
            return f">= {yaml_scalar(limit)}"
        case annotated_types.Lt(lt=limit):
            return f"< {yaml_scalar(limit)}"
        case annotated_types.Le(le=limit):
            return f"<= {yaml_scalar(limit)}"
        case annotated_types.MinLen(min_length=length):
            return f"at least {length}"
        case annotated_types.MaxLen(max_length=length):
            return f"at most {length}"
    # A constraint the sample cannot state would make it lie by omission.
    raise TypeError(f"the config sample cannot describe the constraint {constraint!r}")


def _comment(text: str, indent: str) -> list[str]:
    width = max(40, SAMPLE_WIDTH - len(indent) - 2)
    return [f"{indent}# {line}" for line in textwrap.wrap(text, width, break_on_hyphens=False)]


def _model_or_none(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _optional_model(field: FieldInfo) -> type[BaseModel] | None:
    """The section's model when the field is `Section | None` (a block that may be left out)."""
    args = get_args(field.annotation)
    if len(args) == 2 and type(None) in args:
        return _model_or_none(next(a for a in args if a is not type(None)))
    return None


def _list_item_model(field: FieldInfo) -> type[BaseModel] | None:
    if get_origin(field.annotation) is list:
        (item,) = get_args(field.annotation)
        return _model_or_none(item)
    return None


def yaml_scalar(value: Any, flow: bool = False) -> str:
    """`value` as YAML reads it back: integral floats without `.0`, strings quoted only when needed
    (inside a `[...]` or `{...}`, `flow`, also when they hold one of its marks)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_scalar(item, True) for item in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{" + ", ".join(f"{yaml_scalar(k, True)}: {yaml_scalar(v, True)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value and ": " not in value and " #" not in value
        except yaml.YAMLError:
            plain = False
        plain = plain and not (flow and any(c in value for c in ",[]{}"))
        return value if plain and value == value.strip() and value else json.dumps(value)
    raise TypeError(f"the config sample cannot show {value!r}")

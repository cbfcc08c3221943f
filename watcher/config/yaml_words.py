"""The config's YAML: booleans are only true and false, as in YAML 1.2 (what editors' schemas expect).

PyYAML reads YAML 1.1, where `yes`, `no`, `on` and `off` are booleans too; here they stay text, marked
as `Yaml11Word`, so that a boolean key refuses them with a line that says to write true or false.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["Yaml11Word", "safe_load"]

_YAML11_BOOL = "tag:yaml.org,2002:bool"
_WORDS = re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$")
_TRUE_FALSE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_YAML11_WORD = "!yaml11-word"


class Yaml11Word(str):
    """A plain `yes`, `no`, `on` or `off`: text here, where YAML 1.1 would have read a boolean."""

    __slots__ = ()


class _Loader(yaml.SafeLoader):
    pass


# The implicit resolvers are a class attribute shared with SafeLoader: copy before changing.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _YAML11_BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_YAML11_BOOL, _TRUE_FALSE, list("tTfF"))
_Loader.add_implicit_resolver(_YAML11_WORD, _WORDS, list("yYnNoO"))


def _word(loader: yaml.SafeLoader, node: yaml.Node) -> Yaml11Word:
    assert isinstance(node, yaml.ScalarNode)  # an implicit resolver matches scalars only
    return Yaml11Word(loader.construct_scalar(node))


_Loader.add_constructor(_YAML11_WORD, _word)


def safe_load(text: str) -> Any:
    """`yaml.safe_load`, with YAML 1.2's booleans (see the module's docstring)."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects

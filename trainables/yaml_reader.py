"""The one YAML reader of every entry point: safe, bounded, and read the way a user means it.

- ``safe_load`` semantics: no Python tags, only plain data.
- Bounded: a file of at most ``MAX_BYTES`` and at most ``MAX_ALIASES`` aliases, so a few hundred bytes of nested
  aliases (a "billion laughs") cannot expand to millions of objects downstream.
- A key given twice in one mapping is an error (PyYAML keeps the last one silently).
- YAML 1.2 scalars: ``1e-1`` is a float (YAML 1.1 reads it as a string), and only true/false are booleans
  (YAML 1.1 also reads yes/no/on/off as booleans).
- A binary or non-UTF-8 file is a one-line error, not a decoding traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # configs are a few KB; a megabyte is already not a config
MAX_ALIASES = 100

_BOOL = "tag:yaml.org,2002:bool"
_FLOAT = "tag:yaml.org,2002:float"
_FLOAT_12 = re.compile(  # YAML 1.2's core schema: the exponent needs no dot, the dot needs no exponent
    r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_12 = re.compile(r"^[-+]?[0-9]+$")


class YamlError(ValueError):
    """The text is not a config this project reads; the message is one line naming the source."""


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source, self.aliases = source, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise YamlError(f"{self.source}: more than {MAX_ALIASES} YAML aliases (*name); write the values out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` is flattened by SafeLoader itself
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise YamlError(f"{self.source}: line {key_node.start_mark.line + 1}: a mapping key must be a scalar")
            if key in seen:
                raise YamlError(
                    f"{self.source}: line {key_node.start_mark.line + 1}: key {key!r} is given twice in one mapping; "
                    "keep one"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Only YAML 1.2's scalars resolve implicitly: drop 1.1's bool, int and float patterns and add 1.2's.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _FLOAT, "tag:yaml.org,2002:int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, _BOOL_12, list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_12, list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, _FLOAT_12, list("-+0123456789."))
# 1.2 integers are decimal: `010` is ten (1.1 reads it as octal eight)
_Loader.add_constructor("tag:yaml.org,2002:int", lambda loader, node: int(loader.construct_scalar(node), 10))


def loads(text: str, source: str) -> Any:
    """The data of the YAML ``text``; ``source`` names it in errors (a file, or ``--set KEY``)."""
    loader = _Loader(text, source)
    try:
        return loader.get_single_data()
    except YamlError:
        raise
    except (yaml.YAMLError, ValueError) as e:  # ValueError: a tagged scalar that is no such value (!!int x)
        raise YamlError(f"{source} is not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise YamlError(f"{source} is nested too deeply to be a config") from None
    finally:
        loader.dispose()


def read_file(path: str | Path) -> Any:
    """The data of the YAML file at ``path``: a missing, unreadable, binary or too-large file is a ``YamlError``."""
    path = Path(path)
    if not path.is_file():
        raise YamlError(f"config file not found: {path}" if not path.exists() else f"{path} is not a file")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise YamlError(f"cannot read {path}: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise YamlError(f"{path} is larger than {MAX_BYTES // 1024} KB: not a config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlError(f"{path} is not UTF-8 text (byte {e.start}): give a YAML config file") from None
    if "\x00" in text:
        raise YamlError(f"{path} is a binary file, not YAML: give a YAML config file")
    return loads(text, str(path))

"""YAML read with YAML 1.2 scalars, duplicate-key detection, and node marks for errors.

PyYAML follows YAML 1.1, where ``21:00`` is the integer 1260 and ``no``/``on`` are booleans
(the "Norway problem"); couples write times and words, so only ``true``/``false`` are
booleans and only plain decimals are numbers here. Marks are found only when something is
wrong: composing the node tree costs as much again as loading.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["Duplicate", "YamlDocument", "locate", "parse"]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
# YAML 1.2's core schema has no timestamps; pydantic reads dates from strings and reports a
# bad one (2026-02-30) as a field error instead of a crash inside the YAML constructor.
_TIMESTAMP = "tag:yaml.org,2002:timestamp"

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Duplicate:
    key: str
    line: int  # 1-based, of the repeated key
    column: int
    first_line: int


@dataclass(slots=True)
class YamlDocument:
    data: object
    duplicates: list[Duplicate] = field(default_factory=list)


class _Loader(_Base):  # type: ignore[misc]
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[Duplicate] = []

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode):
                mark = key_node.start_mark
                if key_node.value in seen:
                    self.duplicates.append(
                        Duplicate(
                            key_node.value, mark.line + 1, mark.column + 1, seen[key_node.value]
                        )
                    )
                seen.setdefault(key_node.value, mark.line + 1)
        result: dict[Any, Any] = super().construct_mapping(node, deep)
        return result


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def parse(text: str) -> YamlDocument:
    """Load one YAML document; ``yaml.YAMLError`` (with a mark) when it is not valid YAML."""
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    return YamlDocument(data, loader.duplicates)


def locate(text: str, paths: Sequence[tuple[str | int, ...]]) -> list[tuple[int, int]]:
    """1-based line and column of the node at each path, or of its nearest existing parent.

    For a path whose last step is a key that exists, the key's own position is given, so an
    unknown key points at the key and a bad value at the line that holds it. The text is
    composed once for all paths.
    """
    loader = _Loader(text)
    try:
        root: Node | None = loader.get_single_node()
    finally:
        loader.dispose()
    if root is None:
        return [(1, 1) for _ in paths]
    return [_locate(root, path) for path in paths]


def _locate(node: Node, path: tuple[str | int, ...]) -> tuple[int, int]:
    best = node.start_mark
    for step in path:
        child: Node | None = None
        if isinstance(node, MappingNode) and isinstance(step, str):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == step:
                    best = key_node.start_mark
                    child = value_node
                    break
        elif (
            isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value)
        ):
            child = node.value[step]
            best = child.start_mark
        if child is None:
            break
        node = child
    return best.line + 1, best.column + 1

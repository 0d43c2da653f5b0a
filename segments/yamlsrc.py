"""YAML loading that remembers where each mapping and key came from.

Errors must point at the user's own file and line, so every mapping loaded here
is a :class:`LineDict` carrying the line it starts on and the line of each key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from segments.errors import ConfigError


class LineDict(dict[str, Any]):
    """A dict that knows its source file, start line and each key's line (1-based)."""

    file: str = "<inline>"
    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A list that knows the line of each item (1-based)."""

    file: str = "<inline>"
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    source_name = "<inline>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.file = loader.source_name
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise ConfigError(
                "mapping keys must be plain scalars",
                file=loader.source_name,
                line=key_node.start_mark.line + 1,
            )
        result[str(key)] = loader.construct_object(value_node, deep=True)
        result.key_lines[str(key)] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.file = loader.source_name
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_text(text: str, source: str = "<inline>") -> Any:
    """Parse YAML text; mappings become LineDict, sequences LineList."""
    loader = _Loader(text)
    loader.source_name = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ConfigError(
            f"invalid YAML: {exc.problem}",
            file=source,
            line=mark.line + 1 if mark else None,
        ) from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file, with line tracking."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(path)) from None
    return load_yaml_text(text, str(path))


def line_at(data: Any, loc: list[Any] | tuple[Any, ...]) -> int | None:
    """The line of the deepest part of ``loc`` (keys and list indexes) found in ``data``."""
    line = getattr(data, "line", None) or None
    node = data
    for part in loc:
        if isinstance(node, LineDict) and isinstance(part, str) and part in node:
            line = node.line_of(part)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line

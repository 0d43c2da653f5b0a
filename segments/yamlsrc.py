"""YAML loading that remembers where each mapping and key came from.

Errors must point at the user's own file and line, so every mapping loaded here
is a :class:`LineDict` carrying the line it starts on and the line of each key.

Every YAML file mailsmith reads (campaign, segments, blocks' front matter) comes
through here, so this is also where hostile YAML is refused: whatever the text,
loading returns data or raises a located :class:`ConfigError`, never anything
else. The limits:

- nesting: at most :data:`MAX_DEPTH` mappings and lists inside one another,
  counted as the data will be once aliases are expanded (deeper nesting would
  exhaust Python's stack here or in any code that walks the data later);
- aliases: together they may copy at most :data:`MAX_ALIAS_NODES` nodes (an
  alias of an alias of ... grows exponentially: the "billion laughs");
- duplicate keys in one mapping are refused, not silently last-wins;
- the file must be UTF-8 text without control characters, and strings may not
  hold unpaired surrogate escapes (``"\\ud800"``: they cannot be written out).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from segments.errors import ConfigError

MAX_DEPTH = 100
MAX_ALIAS_NODES = 10_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_STR_TAG = "tag:yaml.org,2002:str"
_SURROGATE = re.compile("[\ud800-\udfff]")
_TAG_HINT = "drop the explicit !!tag: mailsmith reads plain mappings, lists and scalars"
_DEPTH_HINT = (
    f"mailsmith reads YAML nested at most {MAX_DEPTH} levels deep "
    "(mappings and lists, aliases expanded); flatten the structure"
)


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


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """SafeLoader with line tracking, limits on nesting and aliases, no duplicate keys."""

    def __init__(self, text: str, source: str) -> None:
        self.source_name = source
        self._depth = 0  # collections enclosing the node being composed
        self._aliased = 0  # nodes copied by aliases so far
        # (expanded node count, expanded collection height) of every composed node;
        # a node that is being composed is not in it yet, so an alias to it is recursive
        self._measures: dict[yaml.Node, tuple[int, int]] = {}
        self._checked_keys: set[yaml.Node] = set()
        super().__init__(text)

    def error(self, message: str, mark: Any, hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.source_name, line=_line(mark), hint=hint)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._count_alias(event, target)
            return super().compose_node(parent, index)
        nested = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise self.error(
                    f"nested more than {MAX_DEPTH} levels deep", event.start_mark, _DEPTH_HINT
                )
        node = super().compose_node(parent, index)
        if nested:
            self._depth -= 1
        self._measure(node)
        return node

    def _count_alias(self, event: yaml.AliasEvent, target: yaml.Node) -> None:
        """Refuse an alias that is recursive, nests too deep or copies too much."""
        if target not in self._measures:
            raise self.error(
                f"alias *{event.anchor} refers to a node that contains it",
                event.start_mark,
                "an alias can only repeat a node that is complete where the alias appears",
            )
        size, height = self._measures[target]
        if self._depth + height > MAX_DEPTH:
            raise self.error(
                f"alias *{event.anchor} nests more than {MAX_DEPTH} levels deep",
                event.start_mark,
                _DEPTH_HINT,
            )
        self._aliased += size
        if self._aliased > MAX_ALIAS_NODES:
            raise self.error(
                f"aliases expand to more than {MAX_ALIAS_NODES} values",
                event.start_mark,
                "each alias (*name) copies its anchor's whole structure, so aliases of "
                "aliases grow exponentially; write the values out or use fewer aliases",
            )

    def _measure(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            self._measures[node] = (1, 0)
            return
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value
        measures = [self._measures[child] for child in children]
        size = 1 + sum(size for size, _ in measures)
        self._measures[node] = (size, 1 + max((height for _, height in measures), default=0))

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Runs before the merge keys (``<<: *base``) are spliced in, so a key that
        # overrides a merged one is not taken for a duplicate.
        if node not in self._checked_keys:
            self._checked_keys.add(node)
            self._check_keys(node)
        super().flatten_mapping(node)

    def _check_keys(self, node: yaml.MappingNode) -> None:
        first: dict[str, int | None] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if key_node.tag == _VALUE_TAG:  # a bare ``=`` key: flatten_mapping makes it a str
                key_node.tag = _STR_TAG
            key = _mapping_key(self, key_node)
            line = _line(key_node.start_mark)
            if key in first:
                raise self.error(
                    f"duplicate key '{key}' (first at line {first[key]})",
                    key_node.start_mark,
                    "a key may appear once in a mapping; remove or rename one of them",
                )
            first[key] = line

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return super().construct_object(node, deep=deep)
        try:
            data = super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, TypeError, AttributeError, LookupError) as exc:
            # PyYAML's own scalar constructors (dates, ints, bools) raise these on
            # values their patterns let through (2026-13-45) or an explicit tag forces
            # (!!bool x)
            message = f"invalid {node.tag.rsplit(':', 1)[-1]} value"
            if isinstance(exc, ValueError | OverflowError):  # else the message is PyYAML's bug
                message += ": " + str(exc).split(";")[0]  # not int's sys.set_int_max_str_digits
            raise self.error(
                message,
                node.start_mark,
                "quote the value to keep it as text",
            ) from None
        if isinstance(data, str) and _SURROGATE.search(data):
            raise self.error(
                "a string holds an unpaired surrogate escape (\\ud800 to \\udfff)",
                node.start_mark,
                "write the character itself, or escape it whole as \\U0001F600",
            )
        return data


def _mapping_key(loader: _Loader, key_node: yaml.Node) -> str:
    """A mapping key as LineDict stores it; keys must be plain scalars."""
    key = loader.construct_object(key_node, deep=True)
    if not isinstance(key, str | int | float | bool):
        raise loader.error(
            "mapping keys must be plain scalars",
            key_node.start_mark,
            "use a string, number or true/false as the key",
        )
    return str(key)


def _construct_mapping(loader: _Loader, node: yaml.Node) -> LineDict:
    if not isinstance(node, yaml.MappingNode):
        raise loader.error(f"the tag {node.tag} needs a mapping", node.start_mark, _TAG_HINT)
    loader.flatten_mapping(node)
    result = LineDict()
    result.file = loader.source_name
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = _mapping_key(loader, key_node)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.Node) -> LineList:
    if not isinstance(node, yaml.SequenceNode):
        raise loader.error(f"the tag {node.tag} needs a list", node.start_mark, _TAG_HINT)
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.file = loader.source_name
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_text(text: str, source: str = "<inline>") -> Any:
    """Parse YAML text; mappings become LineDict, sequences LineList.

    Raises :class:`ConfigError` (with file, line and hint) for anything that is
    not YAML mailsmith accepts; see the module docstring for the limits.
    """
    loader = None
    try:
        loader = _Loader(text, source)  # checks the characters of the whole text
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(
            f"invalid YAML: {exc.problem or exc.context}",
            file=source,
            line=_line(exc.problem_mark),
            hint=_syntax_hint(text, exc.problem_mark),
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"invalid YAML: the character U+{exc.character:04X} is not allowed",
            file=source,
            line=line,
            hint="remove the control character (often left by a copy-paste or a binary file)",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"invalid YAML: {exc}", file=source, hint=_syntax_hint(text, None)
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


def _syntax_hint(text: str, mark: Any) -> str:
    if mark is not None and text[mark.index : mark.index + 1] == "\t":
        return "YAML indentation uses spaces, not tabs"
    return "check the indentation, quotes, brackets and colons at that line or just before it"


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file (UTF-8), with line tracking."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    return load_yaml_text(text, str(path))


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> ConfigError:
    data = exc.object if isinstance(exc.object, bytes) else b""
    line = data.count(b"\n", 0, exc.start) + 1
    bad = data[exc.start : exc.start + 1].hex()
    return ConfigError(
        f"the file is not UTF-8 text (byte 0x{bad} cannot be decoded)",
        file=str(path),
        line=line,
        hint="save the file as UTF-8",
    )


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

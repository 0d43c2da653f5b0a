"""Loading templates and blocks, and assembling them into one token stream.

Every token remembers the designer's file and line it came from, so errors
raised anywhere later (MJML compile, rendering a recipient) point there.

Templates and blocks are looked up in an ordered list of folders (the user's
own first, then the shipped ones, like Jinja's ``ChoiceLoader``); a name that
would resolve outside those folders is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2.exceptions import TemplateSyntaxError

from renderer.env import make_environment, syntax_error
from segments.errors import TemplateError
from segments.yamlsrc import LineDict, load_yaml_text

_NEWLINE_RE = re.compile(r"\r\n|\r")
_OPENING = {"variable_begin": "var", "block_begin": "tag", "comment_begin": "comment"}
_CLOSING = {"variable_end", "block_end", "comment_end"}
_LEXER = make_environment()  # the delimiters and settings every template renders with
_KEYWORD_RE = re.compile(r"\{%[-+]?\s*(\w+)")
_INCLUDE_RE = re.compile(r"""\{%[-+]?\s*include\s+(['"])([^'"]+)\1\s*[-+]?%\}""")
_BLOCK_TAG_RE = re.compile(r"""<mj-block\s+name\s*=\s*(['"])([^'"]*)\1\s*/?>(?:\s*</mj-block>)?""")
_PLAIN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_UNSUPPORTED_TAGS = {"extends", "import", "from", "block", "raw"}
MAX_INCLUDE_DEPTH = 10


@dataclass(frozen=True, slots=True)
class Token:
    """One piece of template source: ``data``, ``var`` ({{ }}), ``tag`` ({% %}) or ``comment``."""

    kind: str
    text: str
    file: str
    line: int

    @property
    def keyword(self) -> str:
        match = _KEYWORD_RE.match(self.text)
        return match.group(1) if match else ""


def tokenize(text: str, file: str, first_line: int = 1) -> list[Token]:
    """Split Jinja source into tokens with their starting line, as Jinja's lexer splits it.

    Token texts are slices of the source as written (whitespace a ``{%-`` strips
    stays in the data before it: Jinja strips it again when the template renders).
    """
    text = _NEWLINE_RE.sub("\n", text)  # as Jinja's lexer sees it
    tokens: list[Token] = []
    line, pos = first_line, 0
    for kind, start, end in _tag_spans(text, file, first_line):
        if start > pos:
            tokens.append(Token("data", text[pos:start], file, line))
            line += text.count("\n", pos, start)
        tokens.append(Token(kind, text[start:end], file, line))
        line += text.count("\n", start, end)
        pos = end
    if pos < len(text):
        tokens.append(Token("data", text[pos:], file, line))
    return tokens


def _tag_spans(text: str, file: str, first_line: int) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) of every ``{{ }}``, ``{% %}`` and ``{# #}`` in ``text``."""
    pos = 0
    opened: tuple[str, int, int] | None = None  # kind, start, Jinja's line
    try:
        for lineno, kind, value in _LEXER.lex(text):
            start = _skip_stripped(text, value, pos)
            pos = start + len(value)
            if kind in ("raw_begin", "raw_end"):  # the whole {% raw %} tag in one token
                yield "tag", start, pos
            elif kind in _OPENING:
                opened = (_OPENING[kind], start, lineno)
            elif kind in _CLOSING and opened is not None:
                # the token holds the whitespace a '-%}' strips: that stays data
                yield opened[0], opened[1], start + len(value.rstrip())
                opened = None
    except TemplateSyntaxError as exc:
        raise syntax_error(exc, file, first_line - 1 + (exc.lineno or 1)) from None
    if opened is not None:
        kind, start, lineno = opened
        raise TemplateError(
            f"template syntax error: '{text[start : start + 2]}' is never closed",
            file=file,
            line=first_line - 1 + lineno,
            hint="close it with '}}', '%}' or '#}' in the same file",
        )


def _skip_stripped(text: str, value: str, pos: int) -> int:
    """Where ``value`` starts: at ``pos``, or past the whitespace Jinja stripped."""
    if text.startswith(value, pos):
        return pos
    found = text.find(value, pos)
    if found < 0 or text[pos:found].strip():
        raise RuntimeError("Jinja's lexer and the template source disagree")  # pragma: no cover
    return found


@dataclass(frozen=True)
class BlockSpec:
    """A reusable content block: MJML body plus the metadata in its front matter."""

    name: str
    description: str
    show_if: str | dict[str, Any] | None
    fallback: str | None
    fields: tuple[str, ...]
    tokens: tuple[Token, ...]
    file: str
    line: int = 1

    @property
    def segment_name(self) -> str | None:
        """The segment deciding visibility: named, or the block's own inline rule."""
        if self.show_if is None:
            return None
        return self.show_if if isinstance(self.show_if, str) else f"block:{self.name}"


@dataclass
class ContentFolders:
    """Ordered template and block folders (user's first, shipped last)."""

    templates: list[Path] = field(default_factory=list)
    blocks: list[Path] = field(default_factory=list)

    def find_template(self, name: str, *, file: str | None = None, line: int | None = None) -> Path:
        return _find(self.templates, name, "template", file, line)

    def find_block(self, name: str, *, file: str | None = None, line: int | None = None) -> Path:
        if not _PLAIN_NAME_RE.match(name):
            raise TemplateError(
                f"block name {name!r} is not a plain name",
                file=file,
                line=line,
                hint="block names use letters, digits, '_' and '-' and live in a blocks folder",
            )
        return _find(self.blocks, f"{name}.mjml", "block", file, line)


def _find(roots: Sequence[Path], name: str, what: str, file: str | None, line: int | None) -> Path:
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise TemplateError(
            f"{what} path {name!r} escapes the {what} folders",
            file=file,
            line=line,
            hint=f"name {what}s relative to a {what} folder, without '..'",
        )
    for root in roots:
        candidate = (root / relative).resolve()
        if not candidate.is_relative_to(root.resolve()):
            raise TemplateError(
                f"{what} path {name!r} resolves outside the {what} folder {root}",
                file=file,
                line=line,
            )
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(r) for r in roots) or "(no folders)"
    raise TemplateError(
        f"{what} {name!r} not found; looked in {searched}",
        file=file,
        line=line,
        hint=f"put it in one of those folders, or name its folder in paths.{what}s",
    )


def split_front_matter(text: str, file: str) -> tuple[LineDict | None, str, int]:
    """Return (metadata, body, body's first line) for text with ``---`` front matter."""
    if not text.startswith("---"):
        return None, text, 1
    end = re.search(r"^---\s*$", text[3:], re.MULTILINE)
    if end is None:
        raise TemplateError("front matter opened with '---' is never closed", file=file, line=1)
    meta_text = text[3 : 3 + end.start()]
    body_start = 3 + end.end()
    if text[body_start : body_start + 1] == "\n":
        body_start += 1
    meta = load_yaml_text(meta_text, file)  # same line numbers as the file
    if meta is None:
        meta = LineDict()
    if not isinstance(meta, LineDict):
        raise TemplateError("front matter must be a mapping", file=file, line=1)
    return meta, text[body_start:], text[:body_start].count("\n") + 1


def read_source(path: Path) -> str:
    """A template, block or include file's text; not UTF-8 is a located template error."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TemplateError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})",
            file=str(path),
            line=line,
            hint="save the file as UTF-8 (editors: 'Save with encoding')",
        ) from None


def load_block(
    folders: ContentFolders, name: str, *, file: str | None, line: int | None
) -> BlockSpec:
    """Load ``blocks/<name>.mjml`` and its front matter."""
    path = folders.find_block(name, file=file, line=line)
    text = read_source(path)
    meta, body, body_line = split_front_matter(text, str(path))
    meta = meta or LineDict()
    known = {"name", "description", "show_if", "fallback", "fields"}
    for key in meta:
        if key not in known:
            raise TemplateError(
                f"unknown front matter key {key!r}",
                file=str(path),
                line=_meta_line(meta, key),
                hint=f"known keys: {', '.join(sorted(known))}",
            )
    fields = meta.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise TemplateError(
            "'fields' must be a list of field names",
            file=str(path),
            line=_meta_line(meta, "fields"),
        )
    show_if = meta.get("show_if")
    if show_if is not None and not isinstance(show_if, str | dict):
        raise TemplateError(
            "'show_if' must be a segment name or an inline rule",
            file=str(path),
            line=_meta_line(meta, "show_if"),
        )
    fallback = meta.get("fallback")
    if fallback is not None and not isinstance(fallback, str):
        raise TemplateError(
            "'fallback' must be a block name", file=str(path), line=_meta_line(meta, "fallback")
        )
    return BlockSpec(
        name=str(meta.get("name") or name),
        description=str(meta.get("description") or ""),
        show_if=show_if,
        fallback=fallback,
        fields=tuple(fields),
        tokens=tuple(tokenize(body, str(path), body_line)),
        file=str(path),
    )


def _meta_line(meta: LineDict, key: str) -> int | None:
    return meta.line_of(key) or None


@dataclass
class AssembledTemplate:
    """A template with its blocks and includes spliced in."""

    name: str
    file: str
    tokens: list[Token]
    blocks: dict[str, BlockSpec]


# block name -> [(experiment key, variant name, replacement block or None)]
BlockOverrides = dict[str, list[tuple[str, str, str | None]]]


def assemble(
    folders: ContentFolders,
    name: str,
    overrides: BlockOverrides | None = None,
    *,
    named_in: str | None = None,
) -> AssembledTemplate:
    """Load template ``name`` and splice in its blocks and includes.

    ``overrides`` lets experiment variants swap or hide a placed block; ``named_in`` is
    the file that names the template (the campaign), for a "not found" error.
    """
    path = folders.find_template(name, file=named_in)
    tokens = tokenize(read_source(path), str(path))
    assembler = _Assembler(folders, overrides or {})
    spliced = list(assembler.splice(tokens, depth=0))
    return AssembledTemplate(name=name, file=str(path), tokens=spliced, blocks=assembler.blocks)


class _Assembler:
    def __init__(self, folders: ContentFolders, overrides: BlockOverrides) -> None:
        self.folders = folders
        self.overrides = overrides
        self.blocks: dict[str, BlockSpec] = {}

    def splice(self, tokens: Sequence[Token], depth: int) -> Iterator[Token]:
        for token in tokens:
            if token.kind == "tag":
                yield from self.splice_tag(token, depth)
            elif token.kind == "data" and "<mj-block" in token.text:
                yield from self.splice_blocks(token, depth)
            else:
                yield token

    def splice_tag(self, token: Token, depth: int) -> Iterator[Token]:
        keyword = token.keyword
        if keyword in _UNSUPPORTED_TAGS:
            raise TemplateError(
                f"'{{% {keyword} %}}' is not supported in mailsmith templates",
                file=token.file,
                line=token.line,
                hint="reuse content with <mj-block name=\"...\" /> or {% include 'x.mjml' %}",
            )
        if keyword != "include":
            yield token
            return
        match = _INCLUDE_RE.fullmatch(token.text.strip())
        if match is None:
            raise TemplateError(
                "include needs a literal file name",
                file=token.file,
                line=token.line,
                hint="write {% include 'partials/footer.mjml' %}",
            )
        if depth >= MAX_INCLUDE_DEPTH:
            raise TemplateError(
                "includes nest too deeply (a cycle?)", file=token.file, line=token.line
            )
        path = self.folders.find_template(match.group(2), file=token.file, line=token.line)
        yield from self.splice(tokenize(read_source(path), str(path)), depth + 1)

    def splice_blocks(self, token: Token, depth: int) -> Iterator[Token]:
        text, line, pos = token.text, token.line, 0
        for match in _BLOCK_TAG_RE.finditer(text):
            before = text[pos : match.start()]
            if before:
                yield Token("data", before, token.file, line)
            line += before.count("\n")
            yield from self.chain(match.group(2), token.file, line, depth)
            line += match.group(0).count("\n")
            pos = match.end()
        rest = text[pos:]
        if "<mj-block" in rest:
            raise TemplateError(
                "malformed <mj-block> placement",
                file=token.file,
                line=line + rest[: rest.index("<mj-block")].count("\n"),
                hint='write <mj-block name="block_name" />',
            )
        if rest:
            yield Token("data", rest, token.file, line)

    def chain(self, name: str, file: str, line: int, depth: int) -> Iterator[Token]:
        """``{% if show A %}A{% elif show B %}B{% endif %}`` for a block and its fallbacks."""
        chain: list[BlockSpec] = []
        current: str | None = name
        while current is not None:
            if any(b.name == current for b in chain):
                path = " -> ".join([b.name for b in chain] + [current])
                raise TemplateError(f"block fallbacks form a cycle: {path}", file=file, line=line)
            spec = self.blocks.get(current) or load_block(
                self.folders, current, file=file, line=line
            )
            self.blocks[current] = spec
            chain.append(spec)
            current = spec.fallback
        opened = False
        for spec in chain:
            condition = _show_condition(spec)
            if condition is None:
                if opened:
                    yield Token("tag", "{% else %}", file, line)
                yield from self.body(spec, file, line, depth)
                break
            yield Token("tag", f"{{% {'elif' if opened else 'if'} {condition} %}}", file, line)
            opened = True
            yield from self.body(spec, file, line, depth)
        if opened:
            yield Token("tag", "{% endif %}", file, line)

    def body(self, spec: BlockSpec, file: str, line: int, depth: int) -> Iterator[Token]:
        """A block's content where it shows, or what an experiment variant puts there."""
        overrides = self.overrides.get(spec.name, [])
        if depth >= MAX_INCLUDE_DEPTH:
            raise TemplateError(
                "blocks nest too deeply (variants swapping blocks in a cycle?)",
                file=file,
                line=line,
            )
        for number, (key, variant, replacement) in enumerate(overrides):
            test = f"variant({key!r}) == {variant!r}"
            yield Token("tag", f"{{% {'elif' if number else 'if'} {test} %}}", file, line)
            if replacement is not None:
                yield from self.chain(replacement, file, line, depth + 1)
        if overrides:
            yield Token("tag", "{% else %}", file, line)
        yield from self.splice(spec.tokens, depth + 1)
        if overrides:
            yield Token("tag", "{% endif %}", file, line)


def _show_condition(spec: BlockSpec) -> str | None:
    parts = []
    if spec.segment_name is not None:
        parts.append(f"in_segment({spec.segment_name!r})")
    if spec.fields:
        parts.append("has_fields(" + ", ".join(repr(f) for f in spec.fields) + ")")
    return " and ".join(parts) or None

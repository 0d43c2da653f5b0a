"""Hostile YAML (campaign, segments file, block front matter) gives a located ConfigError.

Whatever the text, :mod:`segments.yamlsrc` returns data or raises a
MailsmithError naming the file and line; the CLI turns that into exit 2 and one
``Error:`` line, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli import app
from segments.errors import ConfigError, MailsmithError
from segments.yamlsrc import MAX_ALIAS_NODES, MAX_DEPTH, LineDict, load_yaml, load_yaml_text

runner = CliRunner()

CAMPAIGN = """name: test
template: t.mjml
subject: Hi
profiles: p.csv
"""
BLOCK_BODY = "<mj-section><mj-column><mj-text>B</mj-text></mj-column></mj-section>"


def laughs(levels: int) -> str:
    """A "billion laughs": each anchor is a list of nine aliases of the previous one."""
    lines = ["lol0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def raises_at(text: str, line: int, match: str) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as caught:
        load_yaml_text(text, "c.yaml")
    assert (caught.value.file, caught.value.line) == ("c.yaml", line)
    assert caught.value.hint
    return caught.value


# --- nesting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["a: " + "[" * 20_000, "a: " + "[" * 20_000 + "]" * 20_000, "a: " + "{b: " * 20_000],
    ids=["unclosed-lists", "closed-lists", "mappings"],
)
def test_deep_flow_nesting_is_refused_where_it_passes_the_limit(text: str) -> None:
    raises_at(text, 1, f"nested more than {MAX_DEPTH} levels deep")


def test_deep_block_nesting_names_the_line_past_the_limit() -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(3000))
    raises_at(text, MAX_DEPTH + 1, "nested more than")


def test_nesting_up_to_the_limit_loads() -> None:
    data = load_yaml_text("[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH)
    for _ in range(MAX_DEPTH):
        data = data[0]
    assert data == 1
    raises_at("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), 1, "nested more than")


def test_aliases_count_towards_the_depth() -> None:
    half = MAX_DEPTH // 2 + 1
    text = f"a: &a {'[' * half}1{']' * half}\nb: {'[' * half}*a{']' * half}\n"
    raises_at(text, 2, r"alias \*a nests more than")


# --- duplicate keys ---------------------------------------------------------------------


def test_duplicate_keys_name_the_key_and_both_lines() -> None:
    error = raises_at("subject: a\nname: n\nsubject: b\n", 3, "duplicate key 'subject'")
    assert str(error).startswith("c.yaml:3: duplicate key 'subject' (first at line 1)")


def test_nested_and_flow_duplicates_are_refused() -> None:
    raises_at("vars:\n  x: 1\n  y: 2\n  x: 3\n", 4, "duplicate key 'x' .first at line 2")
    raises_at("a: {k: 1, k: 2}\n", 1, "duplicate key 'k'")


def test_a_key_overriding_a_merged_key_is_not_a_duplicate() -> None:
    data = load_yaml_text("base: &b {a: 1, b: 2}\nv:\n  <<: *b\n  a: 3\n")
    assert data["v"] == {"a": 3, "b": 2}
    assert isinstance(data["v"], LineDict) and data["v"].line_of("a") == 4


def test_an_equals_sign_key_still_loads() -> None:
    assert load_yaml_text("=: x\n") == {"=": "x"}


# --- aliases ------------------------------------------------------------------------------


def test_a_billion_laughs_is_refused_at_the_alias_that_passes_the_cap() -> None:
    error = raises_at(laughs(9), 5, f"aliases expand to more than {MAX_ALIAS_NODES}")
    assert "exponentially" in str(error.hint)


def test_a_few_aliases_load() -> None:
    data = load_yaml_text(laughs(3))
    assert len(data["lol2"]) == 9 and data["lol2"][0][0] == ["x"] * 9


def test_a_recursive_alias_is_refused() -> None:
    raises_at("a: &a [1, *a]\n", 1, r"alias \*a refers to a node that contains it")
    raises_at("a: &a\n  <<: *a\n", 2, r"alias \*a refers")


# --- characters, encodings, values ----------------------------------------------------------


def test_a_file_that_is_not_utf8_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: x\ncity: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        load_yaml(path)
    assert (caught.value.file, caught.value.line) == (str(path), 2)
    assert caught.value.hint == "save the file as UTF-8"


def test_control_characters_are_refused_with_their_line() -> None:
    raises_at("a: 1\nb: x\x00y\n", 2, "U\\+0000 is not allowed")


def test_tabs_for_indentation_get_a_hint() -> None:
    assert "spaces, not tabs" in str(raises_at("a:\n\tb: 1\n", 2, "invalid YAML").hint)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("as_of: 2026-13-45\n", "invalid timestamp value"),
        ("n: " + "9" * 5000 + "\n", "invalid int value"),
        ("n: !!int x\n", "invalid int value"),
        ("t: !!timestamp x\n", "invalid timestamp value"),
        ("b: !!bool x\n", "invalid bool value"),
        ('s: "\\ud800"\n', "unpaired surrogate"),
        ("m: !!map x\n", "needs a mapping"),
        ("l: !!seq x\n", "needs a list"),
        ("[1]: x\n", "mapping keys must be plain scalars"),
    ],
    ids=["date", "huge-int", "int", "timestamp", "bool", "surrogate", "map", "seq", "key"],
)
def test_values_python_cannot_build_are_located_errors(text: str, match: str) -> None:
    raises_at(text, 1, match)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ("# only a comment\n", None), ("- 1\n- 2\n", [1, 2]), ("hello\n", "hello")],
)
def test_empty_list_and_scalar_documents_load_as_such(text: str, expected: Any) -> None:
    assert load_yaml_text(text) == expected


def test_a_one_megabyte_line_loads() -> None:
    assert load_yaml_text("a: " + "x" * 1_000_000 + "\n")["a"] == "x" * 1_000_000


# --- anything at all --------------------------------------------------------------------------

YAMLISH = st.text(alphabet="[]{}:,-?&*!|>'\"#%@`~<= \n\tab01.\x00\ufeff\ud800é", max_size=60)
TAGS = "bool int float timestamp binary set omap pairs map seq str null merge value python/name"
TAGGED = st.builds(
    "a: !!{} {}".format, st.sampled_from(TAGS.split()), YAMLISH | st.text(max_size=20)
)
# Printable text: PyYAML itself does not round-trip line separators such as U+0085
# (YAML 1.1 line breaks), and unpaired surrogates are refused on purpose.
PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(PRINTABLE, max_size=12)
)
STRUCTURES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(PRINTABLE, max_size=6), inner)
    ),
    max_leaves=25,
)


def loads_or_raises_a_mailsmith_error(text: str) -> Any:
    try:
        return load_yaml_text(text, "f.yaml")
    except MailsmithError as exc:
        assert exc.file == "f.yaml"
        return exc


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80) | YAMLISH | TAGGED)
def test_any_text_loads_or_raises_a_mailsmith_error(text: str) -> None:
    loads_or_raises_a_mailsmith_error(text)


@settings(max_examples=100, deadline=None)
@given(STRUCTURES, st.data())
def test_dumped_structures_round_trip_and_spliced_duplicates_do_not_crash(
    value: Any, data: st.DataObject
) -> None:
    text = yaml.safe_dump({"root": value}, allow_unicode=data.draw(st.booleans()))
    assert load_yaml_text(text)["root"] == value
    lines = text.splitlines(keepends=True)
    copied = lines[data.draw(st.integers(0, len(lines) - 1))]
    at = data.draw(st.integers(0, len(lines)))
    loads_or_raises_a_mailsmith_error("".join([*lines[:at], copied, *lines[at:]]))


# --- through the CLI ------------------------------------------------------------------------


def build_campaign(tmp_path: Path, raw: bytes) -> tuple[Path, Any]:
    path = tmp_path / "campaign.yaml"
    path.write_bytes(raw)
    return path, runner.invoke(app, ["build", str(path), "--out", str(tmp_path / "o"), "-q"])


def adhoc_build(tmp_path: Path, *, segments: bytes | None = None, front: bytes = b"") -> Any:
    """An ad-hoc build of a template showing block ``b`` (with ``front`` as front matter)."""
    (tmp_path / "blocks").mkdir(parents=True)
    (tmp_path / "blocks" / "b.mjml").write_bytes(
        b"---\n" + front + b"\n---\n" + BLOCK_BODY.encode()
    )
    (tmp_path / "t.mjml").write_text('<mjml><mj-body><mj-block name="b" /></mj-body></mjml>')
    (tmp_path / "p.csv").write_text("id,email\n1,a@example.com\n")
    args = ["build", "--template", str(tmp_path / "t.mjml"), "--profiles", str(tmp_path / "p.csv")]
    if segments is not None:
        (tmp_path / "s.yaml").write_bytes(segments)
        args += ["--segments", str(tmp_path / "s.yaml")]
    return runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "-q"])


def assert_config_error(result: Any, file: Path, line: int, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: {file}:{line}: {message}")
    assert "hint:" in result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        (b"vars: " + b"[" * 20_000, 5, "nested more than 100 levels deep"),
        (b"subject: again\n", 5, "duplicate key 'subject' (first at line 3)"),
        (b"vars:\n  city: caf\xe9\n", 6, "the file is not UTF-8 text"),
        (b"vars:\n  x: 1\n\ty: 2\n", 7, "invalid YAML"),
        (b"vars:\n" + b"".join(b"  " + s.encode() + b"\n" for s in laughs(9).splitlines()), 10,
         "aliases expand to more than"),
    ],
    ids=["deep", "duplicate", "latin-1", "tab", "billion-laughs"],
)  # fmt: skip
def test_cli_hostile_campaign_file(tmp_path: Path, extra: bytes, line: int, message: str) -> None:
    path, result = build_campaign(tmp_path, CAMPAIGN.encode() + extra)
    assert_config_error(result, path, line, message)


def test_cli_hostile_segments_file(tmp_path: Path) -> None:
    deep = b"segments:\n  a:\n    " + b"{all: [" * 10_000
    result = adhoc_build(tmp_path / "deep", segments=deep)
    assert_config_error(result, tmp_path / "deep" / "s.yaml", 3, "nested more than")
    rule = b"{field: email, op: eq, value: x}"
    dup = b"segments:\n  a: " + rule + b"\n  b: " + rule + b"\n  a: " + rule + b"\n"
    result = adhoc_build(tmp_path / "dup", segments=dup)
    assert_config_error(
        result, tmp_path / "dup" / "s.yaml", 4, "duplicate key 'a' (first at line 2)"
    )


def test_cli_hostile_block_front_matter(tmp_path: Path) -> None:
    block = Path("blocks") / "b.mjml"
    result = adhoc_build(tmp_path / "deep", front=b"name: b\nshow_if: " + b"[" * 20_000)
    assert_config_error(result, tmp_path / "deep" / block, 3, "nested more than")
    result = adhoc_build(tmp_path / "dup", front=b"name: b\ndescription: x\nname: c")
    assert_config_error(
        result, tmp_path / "dup" / block, 4, "duplicate key 'name' (first at line 2)"
    )
    result = adhoc_build(tmp_path / "nul", front=b"name: b\x01")
    assert_config_error(result, tmp_path / "nul" / block, 2, "invalid YAML")

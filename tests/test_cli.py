"""The ``mailsmith`` shell: start-up cost, imports, option checks, errors, printing."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import DATA

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()  # an 80-column terminal
# pydantic: typer 0.29 converts every parameter with it (+0.18 s), hence typer<0.29;
# rich.markdown and pygments: typer's rich help panels (+0.2 s), hence plain help
HEAVY = (
    "pandas",
    "numpy",
    "scipy",
    "sklearn",
    "jinja2",
    "mjml",
    "pydantic",
    "rich.markdown",
    "pygments",
)
TEMPLATE = "<mjml><mj-body><mj-text>Hi {{ first_name }}</mj-text></mj-body></mjml>"


@pytest.fixture
def adhoc(tmp_path: Path) -> list[str]:
    """``build`` arguments for a small ad-hoc build that renders two emails."""
    template = tmp_path / "t.mjml"
    template.write_text(TEMPLATE)
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email,first_name\n1,a@example.com,A\n2,b@example.com,B\n")
    return ["build", "--template", str(template), "--profiles", str(profiles), "--quiet"]


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    """A copy of the small audience campaign (40 profiles), free to change."""
    folder = tmp_path / "mini"
    shutil.copytree(DATA / "audience", folder)
    return folder / "campaign.yaml"


def test_help_version_and_usage_errors_load_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import cli\n"
        "runner = CliRunner()\n"
        "for args in (['--help'], ['--version'], ['build', '--help'], ['ab', 'report', '--help'],\n"
        "             ['build', '--limit', '0'], ['render', '--nope']):\n"
        "    runner.invoke(cli.app, args)\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", done.stderr


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(r"mailsmith \d+\.\d+\S*\n", result.stdout)


@pytest.mark.parametrize("shell", ["cli.py", "cli_output.py", "cli_i18n.py"])
def test_cli_imports_only_the_public_api(shell: str) -> None:
    shells = {"cli", "cli_output", "cli_i18n"}
    allowed = {"renderer", "segments", "typer", "rich", *shells, *sys.stdlib_module_names}
    tree = ast.parse((ROOT / shell).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module is not None
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    for module in imported:
        top = module.split(".")[0]
        assert top in allowed, module
        if top in ("renderer", "segments"):
            assert module == top, f"{shell} imports {module}: use the package's public API"


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--max-rejected", "abc", "--max-rejected"),
        ("--sample", "abc", "share"),
        ("--sample", "120%", "share"),
        ("--winner", "subject_line", "--winner"),
    ],
)
def test_option_values_are_checked_before_any_work(
    adhoc: list[str], tmp_path: Path, option: str, value: str, named: str
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, [*adhoc, "--out", str(out), option, value])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and named in result.stderr
    assert result.stdout == ""  # no summary: nothing was built
    assert not out.exists()


def test_adhoc_build_needs_template_and_profiles(adhoc: list[str]) -> None:
    result = runner.invoke(app, adhoc[:3])
    assert result.exit_code == 2
    assert result.stderr == "Error: an ad-hoc build needs both --template and --profiles\n"


def test_option_values_print_literally(adhoc: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, [*adhoc, "--out", str(tmp_path / "o"), "--winner", "[/x]"])
    assert result.exit_code == 2, result.output
    assert "'[/x]'" in result.stderr


def test_error_messages_print_literally(adhoc: list[str], tmp_path: Path) -> None:
    rules = tmp_path / "segments.yaml"
    rules.write_text(
        "segments:\n  mid:\n    all:\n      - {field: first_name, op: between, value: 5}\n"
    )
    result = runner.invoke(app, [*adhoc, "--out", str(tmp_path / "o"), "--segments", str(rules)])
    assert result.exit_code == 2, result.output
    assert "expected a [low, high] list" in result.stderr


def test_file_names_print_literally(adhoc: list[str], tmp_path: Path) -> None:
    template = tmp_path / "[x].mjml"
    template.write_text(TEMPLATE)
    result = runner.invoke(app, [*adhoc, "--out", str(tmp_path / "o"), "--template", str(template)])
    assert result.exit_code == 0, result.output
    assert "([x].mjml," in result.stdout


def test_profile_values_print_literally(mini: Path) -> None:
    profiles = mini.parent / "profiles.csv"
    lines = profiles.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace(",Name1,", ",[/x] [bold]Zed,")
    profiles.write_text("".join(lines))
    result = runner.invoke(app, ["segments", str(mini), "--explain", "p01"])
    assert result.exit_code == 0, result.output
    assert "[/x] [bold]Zed" in result.stdout


def test_a_build_that_rejects_every_row_fails(tmp_path: Path) -> None:
    template = tmp_path / "t.mjml"
    template.write_text(TEMPLATE)
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email,first_name\n1,not-an-email,A\n2,,B\n3,nope,C\n")
    out = tmp_path / "out"
    command = ["build", "--template", str(template), "--profiles", str(profiles), "-q"]
    result = runner.invoke(app, [*command, "--out", str(out)])
    assert result.exit_code == 6, result.output
    assert re.search(r"│\s+invalid_email\s+│\s+2 │", result.stdout)  # the reasons table
    assert re.search(r"│\s+missing_required\s+│\s+1 │", result.stdout)
    assert result.stderr.startswith("Error: nothing was rendered: 3 of 3 rows rejected")
    assert f"{out / 'errors.jsonl'}" in result.stderr
    assert (out / "errors.jsonl").is_file()
    allowed = runner.invoke(app, [*command, "--out", str(out), "--max-rejected", "100%"])
    assert allowed.exit_code == 0, allowed.output


def test_warnings_are_never_wrapped(tmp_path: Path) -> None:
    folder = tmp_path.joinpath("a" * 120, "b" * 120, "c" * 60)
    folder.mkdir(parents=True)
    template = folder / "t.mjml"
    template.write_text(TEMPLATE)
    profiles = folder / "p.csv"
    profiles.write_text("id,email\n")
    command = ["build", "--template", str(template), "--profiles", str(profiles), "-q"]
    # --no-check: TEMPLATE reads first_name, which this file lacks (check would refuse)
    result = runner.invoke(app, [*command, "--out", str(folder / "o"), "--no-check"])
    assert result.exit_code == 0, result.output
    line = f"Warning: {profiles} has no profile rows; nothing was rendered"
    assert line in result.stderr.splitlines()


def test_errors_are_never_wrapped(tmp_path: Path) -> None:
    missing = tmp_path.joinpath("x" * 150, "y" * 150, "campaign.yaml")
    result = runner.invoke(app, ["segments", str(missing)])
    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("Error: ") and str(missing) in first


def test_a_file_the_cli_cannot_write_is_an_error(mini: Path, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "email.html"
    result = runner.invoke(app, ["render", str(mini), "--profile", "p01", "-o", str(target)])
    assert result.exit_code == 5, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("Error: ") and str(target) in result.stderr

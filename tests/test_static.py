"""The code passes its own linters: ruff (lint and format) and mypy --strict.

The versions are pinned in the ``test`` extra, so a new release of either tool
cannot turn CI red on its own; upgrade them deliberately.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "."), ("ruff", "format", "--check", ".")],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(command: tuple[str, ...]) -> None:
    result = _run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # about 35 s; CI runs it
def test_mypy_strict(tmp_path: Path) -> None:
    # strictness comes from [tool.mypy] in pyproject.toml
    cache = str(tmp_path / "mypy-cache")
    result = _run("mypy", "--cache-dir", cache, "cli.py", "cli_output.py", "renderer", "segments")
    assert result.returncode == 0, result.stdout + result.stderr

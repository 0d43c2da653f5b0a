"""Generated hostile campaigns built whole (bench/fuzz_build.py): only located errors,
every input row rendered or rejected with a reason (issue 10). A bounded run here; the
long one is ``python bench/fuzz_build.py`` (figures in docs/reliability.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from fuzz_build import fuzz  # noqa: E402


def _assert_clean(cases: int, seed: int) -> None:
    outcome = fuzz(cases, seed)
    assert outcome.failures == {}
    assert outcome.built + outcome.located == cases
    assert outcome.built > cases // 5  # most hostile files still build, row by row


@pytest.mark.slow  # builds generated campaigns
def test_hostile_campaigns_fail_located_or_reconcile() -> None:
    _assert_clean(60, seed=1)


@pytest.mark.slow
def test_hostile_campaigns_longer_run() -> None:
    _assert_clean(600, seed=10_000)

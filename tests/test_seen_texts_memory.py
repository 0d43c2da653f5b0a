"""The duplicate-id check's memory at its peak: a merge of :class:`SeenTexts` runs."""

from __future__ import annotations

import tracemalloc

import pyarrow as pa

from segments.profiles.textindex import SeenTexts


def test_merging_runs_holds_little_beyond_the_fingerprints() -> None:
    # run sizes go 1, 2, 3, 3+1, 5... chunks: the 89th add merges every run into one, the
    # largest transient there is
    size, chunks = 2_000, 89
    ids = [f"C{i:09d}" for i in range(size * chunks)]
    seen = SeenTexts()
    for start in range(0, len(ids) - size, size):
        seen.add(pa.array(ids[start : start + size]))
    last = pa.array(ids[-size:])
    tracemalloc.start()  # only now: it slows the hashing twentyfold
    try:
        seen.add(last)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(seen) == len(ids) and len(seen._runs) == 1
    # the merge makes 16 bytes per id anew and an 8-byte order: 32 at the peak; it held
    # the old runs through the sort too (40)
    assert peak / len(ids) < 36

"""Find text keys (profile ids) by position, in about 20 bytes per key.

A pandas ``Index`` of n strings answers ``get_indexer`` through a hash table of
Python strings: about 120 bytes per key once asked (the string objects plus the
table), which for the audience's ids is more than all its derived features.
:class:`TextIndex` keeps the keys as one Arrow string array (their bytes plus an
offset) and their 64-bit hashes sorted (8 bytes plus a 4-byte position); a
lookup hashes the asked values, binary-searches the hashes and confirms each
match by comparing the text, so a hash collision never gives a wrong position.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_SLICE = 65_536  # values turned into Python strings at a time, to be hashed


class TextIndex:
    """Positions of text keys; where a key occurs twice, the first position wins.

    Keys and asked values are text or missing (None, NaN); a missing value is
    never found. :meth:`get_indexer` answers like ``pandas.Index.get_indexer``.
    """

    def __init__(self, keys: Any) -> None:
        self._keys = _arrow_text(keys)
        hashes = _hashes(self._keys)
        hashes[np.asarray(self._keys.is_null())] = np.iinfo(np.uint64).max  # never confirmed
        kind = np.int32 if len(hashes) < np.iinfo(np.int32).max else np.int64
        self._order = np.argsort(hashes, kind="stable").astype(kind)
        self._hashes = hashes[self._order]
        # Equal hashes side by side (a repeated key, or a collision): a failed
        # confirmation must then look at the neighbours too.
        self._runs = bool(len(hashes) > 1 and (self._hashes[1:] == self._hashes[:-1]).any())

    def __len__(self) -> int:
        return len(self._keys)

    def repeats(self, below: int) -> bool:
        """True when two of the keys at positions below ``below`` are the same text."""
        same_as_next = self._hashes[1:] == self._hashes[:-1]
        in_run = np.zeros(len(self._hashes), dtype=bool)  # shares its hash with a neighbour
        in_run[:-1] |= same_as_next
        in_run[1:] |= same_as_next
        members = self._order[in_run].astype(np.int64)
        members = members[members < below]
        texts = [t for t in self._keys.take(pa.array(members)).to_pylist() if t is not None]
        return len(set(texts)) < len(texts)

    def get_indexer(self, values: Any) -> np.ndarray:
        """The position of each value among the keys, -1 where it is not one."""
        asked = _arrow_text(values)
        result = np.full(len(asked), -1, dtype=np.int64)
        if not len(asked) or not len(self._keys):
            return result
        hashes = _hashes(asked)
        slot = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
        hit = np.flatnonzero(self._hashes[slot] == hashes)
        candidates = self._order[slot[hit]].astype(np.int64)
        same = pc.equal(self._keys.take(pa.array(candidates)), asked.take(pa.array(hit)))
        confirmed = np.asarray(same.fill_null(False), dtype=bool)
        result[hit[confirmed]] = candidates[confirmed]
        if self._runs:
            for at in hit[~confirmed]:
                result[at] = self._search_run(int(slot[at]), asked[int(at)].as_py())
        return result

    def _search_run(self, slot: int, value: str | None) -> int:
        """The first key equal to ``value`` among the equal hashes from ``slot`` on."""
        if value is None:
            return -1
        end = slot
        while end < len(self._hashes) and self._hashes[end] == self._hashes[slot]:
            position = int(self._order[end])
            if self._keys[position].as_py() == value:
                return position
            end += 1
        return -1


def _arrow_text(values: Any) -> pa.Array:
    """``values`` as one Arrow large_string array (missing: null); Arrow-backed text is
    taken as it is, anything else (object arrays of str) converted."""
    if isinstance(values, pd.Index | pd.Series):
        values = values.array
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    elif not isinstance(values, pa.Array):
        if hasattr(values, "__arrow_array__"):
            values = pa.array(values)
        else:
            values = pa.array(values, type=pa.large_string(), from_pandas=True)
    return values if values.type == pa.large_string() else values.cast(pa.large_string())


def _hashes(values: pa.Array) -> np.ndarray:
    """64-bit hashes of the texts (pandas' hash of the UTF-8 bytes), a slice at a time."""
    result = np.empty(len(values), dtype=np.uint64)
    for start in range(0, len(values), _SLICE):
        texts = values.slice(start, _SLICE).to_numpy(zero_copy_only=False)
        result[start : start + len(texts)] = pd.util.hash_array(texts, categorize=False)
    return result


class SeenTexts:
    """The set of texts seen so far (the validator's ids), in 16 bytes per text.

    A Python set of n strings costs about 100 bytes per string. This keeps a
    128-bit fingerprint of each text (two 64-bit hashes of its UTF-8 bytes with
    different keys) in sorted runs: a chunk's new texts become a run, and runs of
    similar size are merged (about log2(n) runs; each fingerprint is re-sorted
    about log2(n) times). Two different texts share a fingerprint with probability
    about n^2 / 2^129: 3e-25 for ten million ids, far below any hardware error rate.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # sorted by the first half

    def __len__(self) -> int:
        return sum(len(first) for first, _ in self._runs)

    def contains(self, values: Any) -> np.ndarray:
        """For each value (text, never missing), whether it was added before."""
        return self.contains_fingerprints(*text_fingerprints(values))

    def contains_fingerprints(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """:meth:`contains` for texts given by their :func:`text_fingerprints`."""
        found = np.zeros(len(first), dtype=bool)
        if not len(first) or not self._runs:
            return found
        # asked in sorted order: the binary searches then walk each run forwards
        order = np.argsort(first, kind="stable")
        first, second = first[order], second[order]
        hit = np.zeros(len(first), dtype=bool)
        for run_first, run_second in self._runs:
            # the fingerprints whose first half equals, side by side: compare the second
            low = np.searchsorted(run_first, first, side="left")
            high = np.searchsorted(run_first, first, side="right")
            single = np.flatnonzero(high - low == 1)
            hit[single] |= run_second[low[single]] == second[single]
            for i in np.flatnonzero(high - low > 1):  # a 64-bit collision: a few neighbours
                hit[i] |= bool((run_second[low[i] : high[i]] == second[i]).any())
        found[order] = hit
        return found

    def add(self, values: Any) -> None:
        """Add texts that are new (not :meth:`contains`) and distinct from each other."""
        self.add_fingerprints(*text_fingerprints(values))

    def add_fingerprints(self, first: np.ndarray, second: np.ndarray) -> None:
        """:meth:`add` for texts given by their :func:`text_fingerprints`."""
        if not len(first):
            return
        while self._runs and len(self._runs[-1][0]) <= 2 * len(first):
            run = self._runs.pop()
            first = np.concatenate([run[0], first])
            second = np.concatenate([run[1], second])
            del run  # the merged run's arrays go now, not after the sort (peak memory)
        order = np.argsort(first, kind="stable")  # two sorted runs: a linear merge
        first = first[order]  # one half at a time: 32 bytes per text at the peak, not 40
        second = second[order]
        del order
        self._runs.append((first, second))


def text_fingerprints(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """The 128-bit fingerprints :class:`SeenTexts` keeps of texts (never missing), as two
    arrays of 64-bit halves: computed where the texts are (a worker process), compared
    where the set is (the parent)."""
    return _fingerprints(_arrow_text(values))


def _fingerprints(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes of each text, with different keys: a 128-bit fingerprint."""
    first = np.empty(len(values), dtype=np.uint64)
    second = np.empty(len(values), dtype=np.uint64)
    for start in range(0, len(values), _SLICE):
        texts = values.slice(start, _SLICE).to_numpy(zero_copy_only=False)
        stop = start + len(texts)
        first[start:stop] = pd.util.hash_array(texts, categorize=False, hash_key=_KEYS[0])
        second[start:stop] = pd.util.hash_array(texts, categorize=False, hash_key=_KEYS[1])
    return first, second


_KEYS = ("mailsmith-ids-01", "mailsmith-ids-02")  # 16 bytes each (SipHash keys)

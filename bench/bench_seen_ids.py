"""The duplicate-id check's memory: ``SeenTexts`` against the dict of 64-bit hashes it replaced.

Feeds ``--n`` distinct ids in chunks of ``--chunk`` through each structure the way
``ProfileValidator`` does (test the chunk, add its new ids), each in a fresh process,
and prints the RSS growth per id and the time per id. The old way is rebuilt here
as it was (``hashlib.blake2b`` of each id, 8 bytes, as a dict key). ``FirstRows`` is
the duplicate-address check's structure (the fingerprint and the first row of each).

    python bench/bench_seen_ids.py [--n 1000000] [--chunk 5000]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from segments.profiles.emails import FirstRows, repeated_addresses  # noqa: E402
from segments.profiles.textindex import SeenTexts  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(kind: str, n: int, chunk: int) -> None:
    ids = [f"C{i:09d}" for i in range(n)]
    gc.collect()
    before = rss_mib()
    started = time.perf_counter()
    if kind == "SeenTexts":
        seen = SeenTexts()
        for start in range(0, n, chunk):
            texts = pd.Series(ids[start : start + chunk], dtype=object)
            repeated = texts.duplicated().to_numpy() | seen.contains(texts)
            seen.add(texts[~repeated])
        assert len(seen) == n
    elif kind == "FirstRows":
        first = FirstRows()
        for start in range(0, n, chunk):
            texts = pd.Series(ids[start : start + chunk], dtype=object)
            rows = np.arange(start, start + len(texts), dtype=np.int64)
            repeated_addresses(texts, rows, first)
        assert len(first) == n
    else:
        table: dict[int, int] = {}
        for start in range(0, n, chunk):
            for value in ids[start : start + chunk]:
                key = int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")
                if key not in table:
                    table[key] = start
        assert len(table) == n
    seconds = time.perf_counter() - started
    gc.collect()
    grown = (rss_mib() - before) * 1024 * 1024
    print(f"{kind:<34}{grown / n:>10.0f}{seconds / n * 1e6:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="distinct ids")
    parser.add_argument("--chunk", type=int, default=5_000, help="ids per chunk")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.chunk)
        return
    print(f"$ python bench/bench_seen_ids.py --n {args.n} --chunk {args.chunk}")
    print(f"{'structure':<34}{'bytes/id':>10}{'us/id':>10}")
    for kind in ("SeenTexts", "FirstRows", "dict of 64-bit blake2b (before)"):
        command = [sys.executable, __file__, "--child", kind, "--n", str(args.n)]
        subprocess.run([*command, "--chunk", str(args.chunk)], check=True)


if __name__ == "__main__":
    main()

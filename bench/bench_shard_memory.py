"""Peak memory of writing one bundle shard: Parquet holds its row group, JSONL streams.

Each format and shard size runs in a fresh process that writes one shard of
``--rows`` synthetic demo-sized emails (40 KB of HTML, 7 KB of text, some non-ASCII)
through :class:`renderer.build.bundle.BundleFiles`, and prints its peak RSS
(``VmHWM``) above what it had before the first email, beside the emails' size.

    python bench/bench_shard_memory.py [--rows 1000,4000] [--formats parquet,jsonl,jsonl.zst]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from renderer.build.bundle import BundleFiles  # noqa: E402
from renderer.runtime import Rendered  # noqa: E402


def high_water_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(format: str, rows: int) -> None:
    import pyarrow.parquet  # noqa: F401  # loaded before the baseline, as in a build
    import zstandard  # noqa: F401

    base = high_water_mib()
    compression = "zstd" if format == "jsonl.zst" else "none"
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as folder:
        files = BundleFiles(folder, "parquet" if format == "parquet" else "jsonl", rows,
                            text=True, compression=compression)  # fmt: skip
        shard = files.open(0)
        size = 0
        for row in range(rows):
            html = (f"<td style='color:#333'>row {row} é</td>" * 1100)[:40_000]
            text = html[:7_000]
            email = Rendered(row, f"C{row}", f"u{row}@example.com", f"k{row}", ("all",),
                             {"e": "A"}, "Subject", "Preheader", html, text)  # fmt: skip
            shard.write(email)
            size += len(html.encode()) + len(text.encode())
        shard.close()
    peak = high_water_mib() - base
    print(f"{format:<10}{rows:>7,}{size / 2**20:>11.0f}{peak:>10.0f}{peak / (size / 2**20):>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,4000", help="shard sizes (emails)")
    parser.add_argument("--formats", default="parquet,jsonl,jsonl.zst")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    print(f"$ python bench/bench_shard_memory.py --rows {args.rows} --formats {args.formats}")
    print(f"{'format':<10}{'emails':>7}{'emails MiB':>11}{'peak MiB':>10}{'x size':>8}")
    for format in args.formats.split(","):
        for rows in args.rows.split(","):
            command = [sys.executable, __file__, "--child", format, rows]
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()

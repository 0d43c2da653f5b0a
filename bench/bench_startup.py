"""How fast the shell answers before any work: ``--version``, ``--help``, a usage error.

Each command runs ``--repeat`` times in a fresh process (``python cli.py ...`` from this
checkout, as an installed ``mailsmith`` does); prints the median and the fastest run,
and which heavy libraries each one imported (none should: they load only when a command
does real work). Target (issue 9): well under half a second each.

    python bench/bench_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _common import machine_line, source_line  # noqa: E402

COMMANDS = [["--version"], ["--help"], ["build", "--help"], ["build", "--limit", "0"]]
HEAVY = ("pandas", "scipy", "jinja2", "mjml", "pydantic", "rich.markdown", "pygments")
_PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['mailsmith', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_path('cli.py', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    f"print('heavy:', *(m for m in {HEAVY!r} if m in sys.modules))\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(machine_line())
    print(source_line())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for command in COMMANDS:
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "cli.py", *command], cwd=ROOT, env=env,
                           capture_output=True, check=False)  # fmt: skip
            times.append(time.perf_counter() - started)
        probe = subprocess.run([sys.executable, "-c", _PROBE, *command], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=False)  # fmt: skip
        lines = probe.stdout.splitlines()
        heavy = [line[6:].strip() for line in lines if line.startswith("heavy:")]
        heavy = heavy or ["?"]
        print(f"mailsmith {' '.join(command):16} median {statistics.median(times):.3f} s, "
              f"fastest {min(times):.3f} s; heavy imports: {heavy[0] or 'none'}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Hostile inputs against whole builds: no traceback, nobody lost (issue 10).

Each case writes a small campaign whose profile file (CSV or JSONL), campaign YAML or
template is generated from a seeded random mix of hostile values and damaged lines
(numbers that do not fit, lone surrogates, deep nesting, control characters, `now`,
script URLs, broken quotes, wrong field counts, invalid UTF-8, truncated or shuffled
YAML and template text), runs ``build_campaign`` on it in this process, and checks:

- nothing but a located :class:`MailsmithError` escapes (a file-level failure names a
  file), never another exception;
- a build that finishes reconciles: input rows = rendered + rejected + holdout
  (+ excluded + not sampled), every rejection has a reason, every rendered email
  file exists;
- no profile value reaches an ``href`` as a ``javascript:`` URL.

A distinct failure is one (exception type, first frame in mailsmith) pair. The bounded
run is ``tests/test_fuzz_build.py``; the long one is this script:

    python bench/fuzz_build.py [--cases 2000] [--seed 1]

Figures go in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from renderer import BuildOptions, build_campaign, load_campaign  # noqa: E402
from segments.errors import MailsmithError  # noqa: E402

HOSTILE = [
    "inf", "-inf", "1e309", "-1e309", "NaN", "9223372036854775808", "-9223372036854775809",
    "18446744073709551616", "1e400", "0x1F", "1_000", " 12 ", "", "None", "null", "N/A",
    "now", "today", "yesterday", "2026-02-30", "0000-00-00", "9999-12-31T23:59:59Z",
    "javascript:alert(1)", " JaVaScRiPt:alert(1)", "&#106;avascript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:x", "https://ok.example.com/x",
    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{ 7*7 }}", "{% raw %}",
    "\x00", "a\x01b", "\x1b[31mred", "\x7f", "\u200b", "\ufeff", "e\u0301", "\u202e",
    "[" * 5000, "{" * 3000, "[[[[]]]]", "[1, 2, 3]", '{"a": 1}', "a" * 20000,
    "true", "FALSE", "yes", "0", "-0", "1.5e3", "💌", "\\", "'", '"', ",", ";", "\t",
]  # fmt: skip
JSON_HOSTILE = [
    "1e400", "-1e400", "Infinity", "-Infinity", "NaN", '"\\ud800"', '"\\udfff x"',
    "[" * 3000 + "]" * 3000, '{"a":' * 2000 + "1" + "}" * 2000, '["x"]', '{"k": "v"}',
    "18446744073709551616", "true", "null", '"now"', '"javascript:alert(1)"', '"\\u0000"',
]  # fmt: skip
FIELDS = {
    "id": "string", "email": "string", "first_name": "string", "orders": "int",
    "total_spent": "float", "signed_up_at": "datetime", "vip": "bool",
    "website": "string", "tags": "list",
}  # fmt: skip
TEMPLATE = """<mjml><mj-head><mj-title>{{ subject }}</mj-title></mj-head><mj-body>
<mj-section><mj-column>
<mj-text>Hi {{ first_name | fallback('there') }}, {{ orders | fallback(0) }} orders,
{{ total_spent | fallback(0) | money }}</mj-text>
<mj-text><a href="{{ website | fallback('https://shop.example.com') }}">Your page</a></mj-text>
<mj-text>{% for t in tags | fallback([]) %}{{ t }} {% endfor %}</mj-text>
<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
</mj-column></mj-section></mj-body></mjml>
"""
CAMPAIGN = """name: fuzz
template: t.mjml
subject: "Hi {{ first_name | fallback('there') }}"
preheader: "Orders: {{ orders | fallback(0) }}"
unsubscribe_url: "https://shop.example.com/u?rid={{ recipient_id }}"
profiles: PROFILES
schema:
  id: {type: string, required: true}
  email: {type: string, required: true}
  first_name: string
  orders: int
  total_spent: float
  signed_up_at: datetime
  vip: bool
  website: string
  tags: list
paths: {templates: [templates], blocks: [blocks]}
"""


@dataclass
class Outcome:
    """What the cases gave: how many built, failed with a located error, and the
    distinct failures (anything else) with one example each."""

    cases: int = 0
    built: int = 0
    located: int = 0
    rows: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)


def _cell(rng: random.Random) -> str:
    return rng.choice(HOSTILE) if rng.random() < 0.35 else rng.choice(["Ann", "12", "3.5", ""])


def csv_profiles(rng: random.Random, rows: int) -> bytes:
    """A CSV with hostile cells and, now and then, a damaged line."""
    names = list(FIELDS)
    lines = [",".join(names)]
    for number in range(1, rows + 1):
        cells = [_cell(rng) for _ in names]
        cells[0] = str(number) if rng.random() < 0.9 else _cell(rng)
        cells[1] = f"p{number}@example.com" if rng.random() < 0.9 else _cell(rng)
        quoted = ['"' + c.replace('"', '""') + '"' for c in cells]
        line = ",".join(quoted)
        damage = rng.random()
        if damage < 0.03:
            line = line + ',"extra"'
        elif damage < 0.06:
            line = line[: rng.randrange(1, max(2, len(line)))]  # a cut line, maybe mid-quote
        elif damage < 0.08:
            line = line.replace('"', "", 1)
        lines.append(line)
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if rng.random() < 0.1:
        spot = rng.randrange(len(data))
        data = data[:spot] + rng.choice([b"\xff", b"\xc3", b"\x00", b"\r"]) + data[spot:]
    return data


def jsonl_profiles(rng: random.Random, rows: int) -> bytes:
    """JSON lines with hostile values, raw JSON spellings and, now and then, a broken line."""
    lines = []
    for number in range(1, rows + 1):
        parts = []
        for name in FIELDS:
            if rng.random() < 0.15:
                continue
            if name == "id" and rng.random() < 0.85:
                value = json.dumps(str(number) if rng.random() < 0.8 else f" {number}\u200b ")
            elif name == "email" and rng.random() < 0.9:
                value = json.dumps(f"p{number}@example.com")
            elif rng.random() < 0.3:
                value = rng.choice(JSON_HOSTILE)
            else:
                value = json.dumps(_cell(rng))
            parts.append(f'"{name}": {value}')
        line = "{" + ", ".join(parts) + "}"
        if rng.random() < 0.04:
            line = line[: rng.randrange(1, len(line))]
        lines.append(line)
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if rng.random() < 0.1:
        spot = rng.randrange(len(data))
        data = data[:spot] + b"\xff\xfe" + data[spot:]
    return data


def _damaged(rng: random.Random, text: str) -> str:
    """``text`` with a few cuts, duplications or junk insertions."""
    for _ in range(rng.randint(1, 4)):
        spot = rng.randrange(len(text))
        choice = rng.random()
        if choice < 0.3:
            text = text[:spot] + text[spot + rng.randint(1, 20) :]
        elif choice < 0.6:
            text = (
                text[:spot]
                + rng.choice(["{{", "{%", "}}", "%}", "<", ">", ":", "\n  - ", "&a"])
                + text[spot:]
            )
        else:
            end = min(len(text), spot + rng.randint(1, 40))
            text = text[:end] + text[spot:end] + text[end:]
    return text


def write_case(folder: Path, rng: random.Random, kind: str) -> Path:
    """One campaign folder for a case of ``kind`` (csv, jsonl, yaml, template)."""
    (folder / "templates").mkdir(parents=True)
    (folder / "blocks").mkdir()
    template, campaign = TEMPLATE, CAMPAIGN
    rows = rng.randint(1, 40)
    if kind == "jsonl":
        (folder / "profiles.jsonl").write_bytes(jsonl_profiles(rng, rows))
        campaign = campaign.replace("PROFILES", "profiles.jsonl")
    else:
        (folder / "profiles.csv").write_bytes(csv_profiles(rng, rows))
        campaign = campaign.replace("PROFILES", "profiles.csv")
    if kind == "yaml":
        campaign = _damaged(rng, campaign)
    if kind == "template":
        template = _damaged(rng, template)
    (folder / "templates" / "t.mjml").write_text(template, encoding="utf-8")
    (folder / "campaign.yaml").write_text(campaign, encoding="utf-8")
    return folder / "campaign.yaml"


def _signature(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(ROOT) in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def check_build(config: Path, out: Path) -> int:
    """Build ``config``; the number of input rows. Raises AssertionError on a broken
    promise; a located MailsmithError propagates."""
    summary = build_campaign(load_campaign(config), BuildOptions(out=out, check=False))
    accounted = sum(
        summary.get(k, 0) for k in ("rendered", "rejected", "holdout", "excluded", "not_sampled")
    )
    assert accounted == summary["input_rows"], f"{accounted} of {summary['input_rows']} rows"
    errors = (out / "errors.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(errors) == summary["rejected"], "errors.jsonl and the summary disagree"
    assert all(json.loads(line)["reason"] for line in errors), "a rejection without a reason"
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("holdout"):
            continue
        html = (out / entry["html"]).read_text(encoding="utf-8").lower()
        assert 'href="javascript:' not in html, "a javascript: URL in an href"
    return int(summary["input_rows"])


def run_case(seed: int, work: Path, outcome: Outcome, kinds: tuple[str, ...]) -> None:
    """One generated campaign, built and judged."""
    rng = random.Random(seed)
    kind = kinds[seed % len(kinds)]
    folder = work / f"case-{seed}"
    outcome.cases += 1
    outcome.kinds[kind] += 1
    try:
        outcome.rows += check_build(write_case(folder, rng, kind), folder / "out")
        outcome.built += 1
    except MailsmithError as exc:
        if not exc.file:
            outcome.failures.setdefault(f"unlocated {type(exc).__name__}", f"seed {seed}: {exc}")
        else:
            outcome.located += 1
    except (Exception, RecursionError) as exc:  # the thing under test: nothing else escapes
        outcome.failures.setdefault(_signature(exc), f"seed {seed} ({kind}): {exc!r}"[:500])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fuzz(
    cases: int,
    seed: int = 0,
    kinds: tuple[str, ...] = ("csv", "jsonl", "yaml", "template"),
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Run ``cases`` generated campaigns from ``seed`` on."""
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="mailsmith-fuzz-") as work:
        for number in range(cases):
            run_case(seed + number, Path(work), outcome, kinds)
            if progress is not None:
                progress(number + 1)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()

    def progress(done: int) -> None:
        if done % 100 == 0:
            print(f"  {done} cases, {time.perf_counter() - started:.0f} s", flush=True)

    outcome = fuzz(args.cases, args.seed, progress=progress)
    seconds = time.perf_counter() - started
    last = args.seed + args.cases - 1
    print(f"cases: {outcome.cases} ({dict(outcome.kinds)}), seeds {args.seed}..{last}")
    print(f"built and reconciled: {outcome.built} ({outcome.rows} input rows)")
    print(f"refused with a located error: {outcome.located}")
    print(f"distinct failures: {len(outcome.failures)}")
    for signature, example in sorted(outcome.failures.items()):
        print(f"  {signature}: {example}")
    print(f"{seconds:.0f} s")


if __name__ == "__main__":
    main()

"""``mailsmith preview`` speed: start-up, peak memory and GET /email/{id}.html latency.

For each campaign (the shipped demo, and a large one made by bench/make_profiles.py)
a child process loads a PreviewSession (the audience stage once, every profile
validated and segmented once; "loaded" is the part before segmenting: campaign,
audience stage, validation; "warmed" adds the background warm-up, one render per
combination of segments and variants), starts the app on a free port (uvicorn in a thread,
no file watcher), then requests 500 random recipients' emails over one keep-alive
HTTP connection from the same process (the client's time is in the figures) and
reports p50, p95 and max latency, start-up seconds and peak resident memory::

    python bench/bench_preview.py [--n 200000] [--requests 500] [--skip-large]

The large campaign is bench/_work/campaign-<n>.yaml (made first when missing).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import note, peak_rss_mib  # noqa: E402
from renderer import demo_campaign_path  # noqa: E402

WORK = Path(__file__).resolve().parent / "_work"
TARGET_P95_MS = 50.0


def measure(campaign: Path, requests: int, seed: int = 12) -> dict[str, Any]:
    """Start-up, memory and latency for one campaign, in this process."""
    from urllib.parse import quote

    from renderer.serve.server import PreviewServer
    from renderer.serve.session import PreviewSession

    started = time.perf_counter()
    session = PreviewSession(campaign)
    startup = time.perf_counter() - started
    if session.problem is not None:
        raise SystemExit(f"the campaign did not load: {session.problem}")
    session.warmed.wait()  # the background warm-up (one render per segments x variants)
    warmed = time.perf_counter() - started
    server = PreviewServer(session, port=0, watch=False)
    server.start()
    recipients = [r for r in session.find(limit=10**9) if not r.held_out]
    chosen = random.Random(seed).sample(recipients, min(requests, len(recipients)))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    timings = []
    html_bytes = 0
    try:
        for recipient in chosen:
            began = time.perf_counter()
            connection.request("GET", f"/email/{quote(recipient.id, safe='')}.html")
            response = connection.getresponse()
            body = response.read()
            timings.append((time.perf_counter() - began) * 1000)
            if response.status != 200:
                raise SystemExit(f"{recipient.id}: HTTP {response.status}")
            html_bytes += len(body)
    finally:
        connection.close()
        server.stop()
    timings.sort()
    return {
        "campaign": str(campaign),
        "recipients": len(session.find(limit=10**9)),
        "rejected": len(session.state()[0].rejections),
        "requests": len(timings),
        "startup_s": round(startup, 2),
        "loaded_s": session.timings.get("load_s"),  # campaign, audience stage, validation
        "warmed_s": round(warmed, 2),
        "peak_rss_mib": round(peak_rss_mib()),
        "p50_ms": round(statistics.median(timings), 2),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 2),
        "max_ms": round(timings[-1], 2),
        "mean_html_kib": round(html_bytes / len(timings) / 1024, 1),
    }


def child(campaign: Path, requests: int) -> dict[str, Any]:
    """:func:`measure` in a fresh process, so each campaign's peak memory is its own."""
    note(f"measuring {campaign}")
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(campaign), "--requests", str(requests)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def large_campaign(count: int) -> Path:
    path = WORK / f"campaign-{count}.yaml"
    if not path.is_file():
        note(f"making {path} (bench/make_profiles.py --n {count})")
        subprocess.run(
            [sys.executable, str(Path(__file__).parent / "make_profiles.py"), "--n", str(count)],
            check=True,
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="profiles in the large campaign")
    parser.add_argument("--requests", type=int, default=500, help="random recipients requested")
    parser.add_argument("--skip-large", action="store_true", help="only the demo campaign")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.requests)))
        return
    campaigns = [demo_campaign_path()]
    if not args.skip_large:
        campaigns.append(large_campaign(args.n))
    rows = [child(c, args.requests) for c in campaigns]
    columns = "campaign | recipients | loaded s | start-up s | warmed s | peak RSS MiB"
    columns += " | p50 ms | p95 ms | max ms"
    print(f"| {columns} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        name = Path(row["campaign"]).name
        print(
            f"| {name} | {row['recipients']:,} | {row['loaded_s']} | {row['startup_s']} "
            f"| {row['warmed_s']} "
            f"| {row['peak_rss_mib']:,} "
            f"| {row['p50_ms']} | {row['p95_ms']} | {row['max_ms']} |"
        )
    worst = max(row["p95_ms"] for row in rows)
    verdict = "met" if worst < TARGET_P95_MS else "NOT met"
    print(f"target p95 < {TARGET_P95_MS:.0f} ms: {verdict} (worst p95 {worst} ms)")


if __name__ == "__main__":
    main()

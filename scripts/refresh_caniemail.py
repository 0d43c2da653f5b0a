"""Regenerate mailsmith's vendored caniemail data from a caniemail checkout or export.

    python scripts/refresh_caniemail.py PATH [--commit SHA] [--date YYYY-MM-DD]

PATH is one of:

- a clone of https://github.com/hteumeuleu/caniemail (its ``_features/*.md`` front
  matter and ``_data/nicenames.yml`` are read; the commit is read with git);
- a folder holding ``caniemail.json`` or ``data.json`` (caniemail.com's ``/api/data.json``),
  with a ``LICENSE`` beside it;
- such a JSON file itself.

Prefer a checkout: the order in which caniemail lists a client's versions is the only
record of which test is the latest (labels mix years, dates and version numbers:
Outlook for Mac's "16.80" came after its "2016"). A JSON export whose keys were sorted
has lost that order; the script says so when every list looks sorted.

It writes ``renderer/check/data/caniemail.json`` and copies caniemail's MIT licence to
``renderer/check/data/caniemail.LICENSE``. The vendored file keeps only what the lint
reads: per feature its title, category and keywords, the *latest* tested result of
each client (family and platform), and the notes those results cite. caniemail lists
a client's versions oldest first, so the last entry is the client as it is today.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "renderer" / "check" / "data"
SOURCE_URL = "https://github.com/hteumeuleu/caniemail"
CATEGORIES = ("css", "html", "image")  # "others" (AMP, BIMI) is not about markup
_NOTE_RE = re.compile(r"#(\d+)")


def read_checkout(root: Path) -> dict[str, Any]:
    """The export format (``data``, ``nicenames``, commit) from a caniemail clone."""
    features = []
    for path in sorted((root / "_features").glob("*.md")):
        if path.name.startswith("_"):  # _template.md, the model for new features
            continue
        text = path.read_text(encoding="utf-8")
        match = re.match(r"---\n(.*?)\n---", text, re.DOTALL)
        if match is None:
            continue
        # the front matter is YAML flow mappings indented with tabs, which YAML forbids
        meta = yaml.safe_load(match.group(1).replace("\t", "    "))
        features.append({"slug": path.stem, **meta})
    nicenames = yaml.safe_load((root / "_data" / "nicenames.yml").read_text(encoding="utf-8"))
    data: dict[str, Any] = {"data": features, "nicenames": nicenames}
    if (root / ".git").exists():
        data["source_commit"] = _git(root, "rev-parse", "HEAD")
        data["source_commit_date"] = _git(root, "log", "-1", "--format=%cs")
    return data


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def read_source(path: Path) -> tuple[dict[str, Any], Path]:
    """The caniemail data at ``path`` and the licence file found beside it."""
    if path.is_dir() and (path / "_features").is_dir():
        return read_checkout(path), path / "LICENSE"
    if path.is_dir():
        for name in ("caniemail.json", "data.json"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            sys.exit(f"{path}: no _features/, caniemail.json or data.json")
    licence = path.parent / "LICENSE"
    return json.loads(path.read_text(encoding="utf-8")), licence


def looks_sorted(features: list[dict[str, Any]]) -> bool:
    """Whether every client's versions are in string order (an export that sorted keys)."""
    lists = [
        list(versions)
        for feature in features
        for platforms in (feature.get("stats") or {}).values()
        for versions in (platforms or {}).values()
        if versions and len(versions) > 1
    ]
    return bool(lists) and all(keys == sorted(keys) for keys in lists)


def latest(versions: dict[str, str]) -> str:
    """The result of the last version listed (caniemail lists them oldest first)."""
    return str(list(versions.values())[-1]).strip()


def compact_feature(feature: dict[str, Any]) -> dict[str, Any]:
    """Title, category, keywords, the latest result per client and the notes it cites."""
    stats: dict[str, dict[str, str]] = {}
    cited: set[str] = set()
    for family, platforms in sorted((feature.get("stats") or {}).items()):
        for platform, versions in sorted((platforms or {}).items()):
            if not versions:
                continue
            result = latest(versions)
            stats.setdefault(family, {})[platform] = result
            cited.update(_NOTE_RE.findall(result))
    notes = feature.get("notes_by_num") or {}
    compact: dict[str, Any] = {
        "title": str(feature.get("title") or feature["slug"]).strip(),
        "category": feature.get("category"),
        "keywords": str(feature.get("keywords") or ""),
        "stats": stats,
    }
    kept = {num: str(notes[num]) for num in sorted(cited, key=int) if num in notes}
    if kept:
        compact["notes"] = kept
    if feature.get("notes"):
        compact["note"] = str(feature["notes"])
    return compact


def compact(data: dict[str, Any], commit: str | None, date: str | None) -> dict[str, Any]:
    """The vendored document: provenance, client names, and the features."""
    nicenames = data.get("nicenames") or {}
    features = {
        f["slug"]: compact_feature(f)
        for f in sorted(data["data"], key=lambda f: f["slug"])
        if f.get("category") in CATEGORIES
    }
    return {
        "source": SOURCE_URL,
        "source_commit": commit or data.get("source_commit"),
        "source_commit_date": date or data.get("source_commit_date", data.get("last_update_date")),
        "license": "MIT (c) 2019 Rémi Parmentier; see caniemail.LICENSE beside this file",
        "families": dict(sorted((nicenames.get("family") or {}).items())),
        "platforms": dict(sorted((nicenames.get("platform") or {}).items())),
        "features": features,
    }


def dump(document: dict[str, Any]) -> str:
    """JSON with one feature per line, so a refresh shows as a readable diff."""
    head = {k: v for k, v in document.items() if k != "features"}
    lines = [json.dumps(head, ensure_ascii=False, sort_keys=True)[:-1] + ', "features": {']
    items = list(document["features"].items())
    for number, (slug, feature) in enumerate(items):
        comma = "," if number < len(items) - 1 else ""
        body = json.dumps(feature, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        lines.append(f"{json.dumps(slug)}:{body}{comma}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="caniemail clone, export folder or JSON")
    parser.add_argument("--commit", help="the caniemail commit the data comes from")
    parser.add_argument("--date", help="that commit's date (YYYY-MM-DD)")
    parser.add_argument("--out", type=Path, default=TARGET, help="output folder")
    args = parser.parse_args(argv)
    data, licence = read_source(args.source)
    if not licence.is_file():
        sys.exit(f"no LICENSE beside {args.source}: caniemail's MIT licence ships with its data")
    if looks_sorted(data["data"]):
        print(
            "warning: versions look sorted by name; the latest test may be wrong (use a checkout)"
        )
    document = compact(data, args.commit, args.date)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "caniemail.json").write_text(dump(document), encoding="utf-8")
    shutil.copyfile(licence, args.out / "caniemail.LICENSE")
    print(f"{len(document['features'])} features -> {args.out / 'caniemail.json'}")


if __name__ == "__main__":
    main()

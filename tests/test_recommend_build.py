"""Recommendations wired into a build: the pre-pass adds a derived ``recommendations``
list per profile (segments/recommend/prepass.py) that wins over a profile column."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from renderer import load_campaign
from renderer.preview import validated_chunks
from renderer.specs import audience_spec, schema_of
from segments.audience.prepass import prepare_audience
from segments.batch import segment_chunk
from segments.errors import ConfigError
from segments.features.events import clean_events
from segments.recommend.api import recommend_for
from segments.recommend.catalog import load_catalog
from tests.conftest import copy_demo_campaign

DEMO = Path(__file__).resolve().parent.parent / "demo"
CONFIG = """
recommendations:
  catalog: catalog.csv
  n: 3
  weights: {view: 1, add_to_cart: 3, purchase: 5}
"""


def _campaign(folder: Path, extra: str = CONFIG) -> Path:
    path = copy_demo_campaign(folder, rows=40)
    shutil.copy(DEMO / "catalog.csv", folder / "catalog.csv")
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\nrecommendations:\n(  .*\n)+", "\n", text)  # the demo's own settings
    path.write_text(text + extra, encoding="utf-8")
    return path


def test_prepass_adds_recommendations_that_win_over_the_profile_column(tmp_path: Path) -> None:
    campaign = load_campaign(_campaign(tmp_path))
    schema = schema_of(campaign)
    assert schema is not None and campaign.recommendations is not None
    audience = prepare_audience(audience_spec(campaign, schema), campaign.reference_time())
    assert audience.audience is not None
    derived = audience.audience.derived
    ids = [str(i) for i in derived.frame.index]
    stale = [{"sku": "OLD", "name": "a column value"}]
    records = derived.fill_records([{"id": i, "recommendations": stale} for i in ids], "id")
    # the same lists as the library API on the same events and catalog, each recipient's
    # segment its journey, as the build's segment_chunk gives it
    journeys = {}
    for runtime, chunk in validated_chunks(campaign, None):
        batch = segment_chunk(chunk, runtime.segment_plan())
        for id_, names in zip(batch.ids, batch.segments, strict=True):
            journeys[id_] = next(n.split(":")[1] for n in names if n.startswith("journey:"))
    raw = pd.read_csv(tmp_path / "events.csv", dtype=str, keep_default_na=False)
    events = clean_events(raw, known_ids=None, as_of=campaign.reference_time()).events
    expected = recommend_for(
        events,
        ids,
        campaign.recommendations,
        load_catalog(tmp_path / "catalog.csv"),
        as_of=campaign.reference_time(),
        half_life_days=60,
        groups=[journeys[i] for i in ids],
    )
    assert [r["recommendations"] for r in records] == expected
    assert all(len(r["recommendations"]) == 3 for r in records)
    assert any(e["reason"].startswith("because you") for r in records for e in r["recommendations"])
    assert any(e["source"] == "segment" for r in records for e in r["recommendations"])


def test_recommendations_without_events_is_a_config_error(tmp_path: Path) -> None:
    path = _campaign(tmp_path)
    text = path.read_text(encoding="utf-8").replace("\nevents: events.csv\n", "\n")
    text = re.sub(r"\nfeatures:\n(  .*\n)+", "\n", text)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert "recommendations need an events source" in str(info.value)


def test_segments_report_prints_the_offline_evaluation(tmp_path: Path) -> None:
    from renderer import segment_report

    report = segment_report(load_campaign(_campaign(tmp_path)))
    assert report.recommendations[0].startswith("recommendations: ")
    assert "last add_to_cart held out, top 3" in report.recommendations[0]  # no purchase sku
    assert [line.split()[0] for line in report.recommendations[2:]] == ["item-item", "popularity"]


def test_check_knows_the_derived_recommendations_field(tmp_path: Path) -> None:
    from renderer import check_campaign

    path = _campaign(tmp_path)
    text = path.read_text(encoding="utf-8").replace("  recommendations: list\n", "")
    path.write_text(text, encoding="utf-8")
    findings = check_campaign(load_campaign(path)).findings
    assert not [f for f in findings if "recommendations" in f.message], findings


def test_segments_page_shows_the_offline_evaluation(tmp_path: Path) -> None:
    from renderer import segment_report

    page = segment_report(load_campaign(_campaign(tmp_path))).to_html()
    assert "Recommendations: offline evaluation" in page
    assert "item-item" in page and "popularity" in page

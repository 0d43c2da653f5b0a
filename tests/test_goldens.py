"""Golden emails: the demo campaign for one persona of each journey group, in every
combination of the demo's experiment variants, against the files in ``tests/goldens/``.

The HTML is compared after :func:`tests.conftest.normalize_html` (one tag per line, so a
diff points at the tag), the text part after whitespace normalization: a minifier's
cosmetic change does not break a golden, a changed word, attribute or tag does. Change
them on purpose only: ``python -m pytest tests/test_goldens.py --update-goldens``, then
review the diff like code.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest

from renderer import Rendered, load_campaign, render_profile
from renderer.campaign import demo_campaign_path
from renderer.preview import validated_chunks
from renderer.runtime import render_batch
from segments.batch import segment_chunk
from segments.experiments.assign import parse_experiments
from segments.profiles.spool import ValidatedChunk
from tests.conftest import GOLDENS, Goldens, normalize_html

# One recipient of each group of the exclusive `journey` (demo/segments.yaml), and two
# more in the demo's other locales (profiles' `locale`, demo/locales/).
PERSONAS = {
    "C000009": "cart_abandoner",  # a cart in the export; also lapsed
    "C000215": "vip",  # also high_value_ny (the store event) and loyalty_elite
    "C000018": "lapsed",  # no first name: the greeting's fallback
    "C000029": "new_subscriber",
    "C000003": "regular",  # fr-FR: the French catalog, money and dates
    "C000386": "cart_abandoner",  # de-DE: the German catalog, a cart total in German
    "C000262": "vip",  # fr-FR: the VIP block in French, a plural (11 orders)
}
CAMPAIGN = load_campaign(demo_campaign_path())
TEMPLATE = Path(CAMPAIGN.template).stem
# Every combination of the demo experiments' variants: subject_test x offer_test.
COMBINATIONS = [
    dict(zip([e.key for e in experiments], names, strict=True))
    for experiments in [parse_experiments(CAMPAIGN.experiments)]
    for names in itertools.product(*[[v.name for v in e.variants] for e in experiments])
]
CASES = [(pid, variants) for pid in PERSONAS for variants in COMBINATIONS]


def golden_name(profile_id: str, variants: Mapping[str, str | None]) -> str:
    combination = ".".join(f"{key}-{name}" for key, name in variants.items())
    return f"{TEMPLATE}/{PERSONAS[profile_id]}-{profile_id}/{combination}.golden"


def golden_text(email: Rendered) -> str:
    """The stored form of an email: header lines, the normalized HTML one tag a line,
    the text part with runs of spaces and of blank lines collapsed."""
    text = [" ".join(line.split()) for line in email.text.strip().splitlines()]
    text = [line for i, line in enumerate(text) if line or (i and text[i - 1])]
    lines = [
        f"Subject: {email.subject}",
        f"Preheader: {email.preheader}",
        f"Segments: {', '.join(email.segments)}",
        f"Variants: {', '.join(f'{k}={v}' for k, v in email.variants.items())}",
        "",
        "--- html (normalized) ---",
        *normalize_html(email.html).replace("><", ">\n<").splitlines(),
        "",
        "--- text ---",
        *text,
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def emails() -> dict[str, Rendered]:
    """Every case rendered by one runtime through the build's own stages
    (``segment_chunk`` then ``render_batch``, variants forced as a preview forces them);
    ``test_the_preview_renders_what_the_goldens_hold`` checks ``render_profile`` agrees.
    One runtime for all: each ``render_profile`` call runs the audience pre-pass."""
    chunks = list(validated_chunks(CAMPAIGN, None))
    runtime = chunks[0][0]
    ids = CAMPAIGN.profiles.id_field
    frame = pd.concat([c.valid[c.valid[ids].astype(str).isin(list(PERSONAS))] for _, c in chunks])
    frame = frame[~frame[ids].duplicated()]  # the row the build renders
    rendered: dict[str, Rendered] = {}
    for variants in COMBINATIONS:
        plan = runtime.segment_plan(variants, force_holdouts=True)
        result = render_batch(runtime, segment_chunk(ValidatedChunk(frame, []), plan))
        assert result.rejected == []
        rendered.update({golden_name(e.id, e.variants): e for e in result.rendered})
    return rendered


@pytest.mark.parametrize(
    ("profile_id", "variants"),
    CASES,
    ids=[golden_name(pid, variants).split("/", 1)[1] for pid, variants in CASES],
)
def test_demo_email_matches_its_golden(
    emails: dict[str, Rendered],
    goldens: Goldens,
    profile_id: str,
    variants: dict[str, str],
) -> None:
    email = emails[golden_name(profile_id, variants)]
    assert f"journey:{PERSONAS[profile_id]}" in email.segments  # still covers its group
    goldens.check(golden_name(profile_id, variants), golden_text(email))


def test_the_preview_renders_what_the_goldens_hold(emails: dict[str, Rendered]) -> None:
    profile_id, variants = CASES[-1]
    email = emails[golden_name(profile_id, variants)]
    preview = render_profile(CAMPAIGN, profile_id, variants=variants)
    assert (preview.html, preview.text) == (email.html, email.text)
    assert (preview.subject, preview.preheader) == (email.subject, email.preheader)
    assert (preview.segments, dict(preview.variants)) == (email.segments, variants)


def test_every_golden_file_belongs_to_a_case(goldens: Goldens) -> None:
    expected = {golden_name(pid, variants) for pid, variants in CASES}
    stored = {str(p.relative_to(GOLDENS)) for p in GOLDENS.rglob("*.golden")}
    if goldens.update:
        for name in stored - expected:
            (GOLDENS / name).unlink()
        return
    assert stored - expected == set(), "stale golden files: remove them or --update-goldens"

"""The public API is what the packages' __init__ export, and nothing slips in unnoticed."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import renderer
import segments

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "numpy", "scipy", "sklearn", "jinja2", "mjml", "pydantic")


def test_renderer_exports() -> None:
    assert set(renderer.__all__) == {
        # mailsmith build
        "build",
        "iter_build",
        "BuildOptions",
        "CampaignBuild",
        "Progress",
        "parse_max_rejected",
        "too_many_rejected",
        "inferred_types",
        "summary_rows",
        # mailsmith render
        "render_profile",
        "render_segment",
        "Rendered",
        # mailsmith preview
        "serve_preview",
        "PreviewSession",
        # mailsmith segments
        "segment_report",
        "explain_profile",
        "SegmentReport",
        "ProfileExplanation",
        # mailsmith ab report
        "ab_report",
        "ab_reports_html",
        "AbReport",
        "AB_COLUMNS",
        "ab_rows",
        "ab_notes",
        "shown",
        # mailsmith snapshot
        "snapshot",
        "SnapshotOptions",
        "SnapshotReport",
        "load_fixtures",
        "Fixture",
        # mailsmith i18n
        "CatalogFile",
        "extract_messages",
        "init_catalog",
        "update_catalogs",
        "compile_catalogs",
        # mailsmith check
        "check_campaign",
        "CheckReport",
        "Finding",
        "Severity",
        "format_findings",
        "findings_by_file",
        "CheckFailedError",
        # campaigns
        "Campaign",
        "load_campaign",
        "adhoc_campaign",
        "demo_campaign_path",
        # errors
        "MailsmithError",
        "ConfigError",
        "ProfileDataError",
        "SegmentRuleError",
        "TemplateError",
        "UndefinedFieldError",
        "MjmlError",
        "OutputError",
        "AudienceWarningError",
    }
    for name in renderer.__all__:
        assert getattr(renderer, name) is not None
        assert name in dir(renderer)


def test_segments_exports() -> None:
    assert set(segments.__all__) == {
        # rules
        "SegmentSet",
        "load_segments",
        "parse_segments",
        # the audience document: rules, groups, clusters, percentiles
        "SegmentDocument",
        "parse_segment_document",
        "AudienceSegments",
        "derive_audience",
        "ClusterModel",
        # profiles
        "ProfileSchema",
        "FieldDef",
        "ProfileValidator",
        "Rejection",
        "read_chunks",
        "to_records",
        "count_rows",
        # features, experiments
        "FeatureConfig",
        "derive_features",
        "parse_share",
        # errors
        "MailsmithError",
        "ConfigError",
        "ProfileDataError",
        "SegmentRuleError",
        "AudienceWarningError",
    }
    for name in segments.__all__:
        assert getattr(segments, name) is not None
        assert name in dir(segments)


def test_exported_names_are_the_library_objects() -> None:
    from renderer.build.driver import build_campaign
    from renderer.reports.ab import report_from_manifest, reports_html

    assert renderer.ab_report is report_from_manifest
    assert renderer.ab_reports_html is reports_html
    assert renderer.MailsmithError is segments.MailsmithError
    # importing the subpackage renderer.build does not shadow the function build
    assert inspect.isfunction(renderer.build)
    assert list(inspect.signature(renderer.build).parameters) == list(
        inspect.signature(build_campaign).parameters
    )


def test_unknown_names_are_attribute_errors() -> None:
    for package in (renderer, segments):
        try:
            package.no_such_name  # type: ignore[attr-defined]  # noqa: B018
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        else:
            raise AssertionError(f"{package.__name__}.no_such_name resolved")


def test_former_names_stay_importable() -> None:
    from renderer import CampaignRuntime, NaivePipeline, build_campaign, compile_template

    assert {"build_campaign", "CampaignRuntime", "NaivePipeline", "compile_template"}.isdisjoint(
        renderer.__all__
    )
    assert callable(build_campaign) and callable(compile_template)
    assert CampaignRuntime.__name__ == "CampaignRuntime"
    assert NaivePipeline.__name__ == "NaivePipeline"


def test_importing_the_packages_loads_no_heavy_library() -> None:
    code = (
        "import sys, renderer, segments, segments.errors\n"
        "renderer.MailsmithError, renderer.build\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""


def test_errors_share_one_root() -> None:
    for name in (
        "ConfigError",
        "ProfileDataError",
        "SegmentRuleError",
        "TemplateError",
        "MjmlError",
        "OutputError",
        "UndefinedFieldError",
        "AudienceWarningError",
    ):
        assert issubclass(getattr(renderer, name), renderer.MailsmithError)


def test_profiles_exports() -> None:
    import segments.profiles

    assert set(segments.profiles.__all__) == {
        "DEFAULT_NA_VALUES",
        "ChunkSpool",
        "FieldDef",
        "ProfileSchema",
        "ProfileValidator",
        "RawChunk",
        "Rejection",
        "SeenTexts",
        "TextIndex",
        "ValidatedChunk",
        "column_hint",
        "convert",
        "count_rows",
        "infer_file_schema",
        "infer_schema",
        "infer_type",
        "load_suppression",
        "missing_mask",
        "parse_json",
        "read_chunks",
        "to_records",
    }
    for name in segments.profiles.__all__:
        assert getattr(segments.profiles, name) is not None

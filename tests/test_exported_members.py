"""The public API is what the packages' __init__ export, and nothing slips in unnoticed."""

from __future__ import annotations

import renderer
import segments


def test_renderer_exports() -> None:
    exported = {name for name in dir(renderer) if not name.startswith("_")}
    assert set(renderer.__all__) <= exported
    for name in renderer.__all__:
        assert getattr(renderer, name) is not None


def test_segments_exports() -> None:
    exported = {name for name in dir(segments) if not name.startswith("_")}
    assert set(segments.__all__) <= exported
    assert {"SegmentSet", "parse_segments", "load_segments", "MailsmithError"} <= set(
        segments.__all__
    )


def test_errors_share_one_root() -> None:
    for name in (
        "ConfigError",
        "ProfileDataError",
        "SegmentRuleError",
        "TemplateError",
        "MjmlError",
        "OutputError",
        "UndefinedFieldError",
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

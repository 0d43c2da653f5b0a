"""mailsmith's audience side: profiles, segment rules, features, clusters, experiments.

Knows nothing of Jinja or MJML.

Names resolve lazily (PEP 562): ``import segments`` (which ``import segments.errors``
implies) costs nothing; pandas, scipy and scikit-learn load when a name that needs
them is first used. Type checkers see the real imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segments.audience.clusters import ClusterModel as ClusterModel
    from segments.audience.document import AudienceSegments as AudienceSegments
    from segments.audience.document import SegmentDocument as SegmentDocument
    from segments.audience.document import derive_audience as derive_audience
    from segments.audience.document import parse_segment_document as parse_segment_document
    from segments.errors import AudienceWarningError as AudienceWarningError
    from segments.errors import ConfigError as ConfigError
    from segments.errors import MailsmithError as MailsmithError
    from segments.errors import ProfileDataError as ProfileDataError
    from segments.errors import SegmentRuleError as SegmentRuleError
    from segments.experiments.assign import parse_share as parse_share
    from segments.features.scores import FeatureConfig as FeatureConfig
    from segments.features.scores import derive_features as derive_features
    from segments.profiles import FieldDef as FieldDef
    from segments.profiles import ProfileSchema as ProfileSchema
    from segments.profiles import ProfileValidator as ProfileValidator
    from segments.profiles import Rejection as Rejection
    from segments.profiles import count_rows as count_rows
    from segments.profiles import read_chunks as read_chunks
    from segments.profiles import to_records as to_records
    from segments.rules.ruleset import SegmentSet as SegmentSet
    from segments.rules.ruleset import load_segments as load_segments
    from segments.rules.ruleset import parse_segments as parse_segments

__all__ = [
    "AudienceSegments",
    "AudienceWarningError",
    "ClusterModel",
    "ConfigError",
    "FeatureConfig",
    "FieldDef",
    "MailsmithError",
    "ProfileDataError",
    "ProfileSchema",
    "ProfileValidator",
    "Rejection",
    "SegmentDocument",
    "SegmentRuleError",
    "SegmentSet",
    "count_rows",
    "derive_audience",
    "derive_features",
    "load_segments",
    "parse_segment_document",
    "parse_segments",
    "parse_share",
    "read_chunks",
    "to_records",
]

# name -> module: where each lazily resolved name lives (under the same name).
_LAZY: dict[str, str] = {
    "AudienceSegments": "segments.audience.document",
    "AudienceWarningError": "segments.errors",
    "ClusterModel": "segments.audience.clusters",
    "ConfigError": "segments.errors",
    "FeatureConfig": "segments.features.scores",
    "FieldDef": "segments.profiles",
    "MailsmithError": "segments.errors",
    "ProfileDataError": "segments.errors",
    "ProfileSchema": "segments.profiles",
    "ProfileValidator": "segments.profiles",
    "Rejection": "segments.profiles",
    "SegmentDocument": "segments.audience.document",
    "SegmentRuleError": "segments.errors",
    "SegmentSet": "segments.rules.ruleset",
    "count_rows": "segments.profiles",
    "derive_audience": "segments.audience.document",
    "derive_features": "segments.features.scores",
    "load_segments": "segments.rules.ruleset",
    "parse_segment_document": "segments.audience.document",
    "parse_segments": "segments.rules.ruleset",
    "parse_share": "segments.experiments.assign",
    "read_chunks": "segments.profiles",
    "to_records": "segments.profiles",
}

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error

    def __getattr__(name: str) -> Any:
        """Import the module behind ``name`` on first use (PEP 562)."""
        try:
            module = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

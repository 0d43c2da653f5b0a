"""mailsmith's audience side: profiles, segment rules, features, clusters, experiments.

Knows nothing of Jinja or MJML.
"""

from segments.audience.clusters import ClusterModel as ClusterModel
from segments.audience.clusters import ClusterSpec as ClusterSpec
from segments.audience.document import AudienceSegments as AudienceSegments
from segments.audience.document import PercentileThreshold as PercentileThreshold
from segments.audience.document import SegmentDocument as SegmentDocument
from segments.audience.document import derive_audience as derive_audience
from segments.audience.document import parse_segment_document as parse_segment_document
from segments.audience.hierarchy import ExclusiveGroup as ExclusiveGroup
from segments.audience.hierarchy import MinSizes as MinSizes
from segments.audience.hierarchy import SizeWarning as SizeWarning
from segments.errors import AudienceWarningError as AudienceWarningError
from segments.errors import ConfigError as ConfigError
from segments.errors import MailsmithError as MailsmithError
from segments.errors import ProfileDataError as ProfileDataError
from segments.errors import SegmentRuleError as SegmentRuleError
from segments.features.derived import DerivedFields as DerivedFields
from segments.features.scores import FeatureConfig as FeatureConfig
from segments.features.scores import derive_features as derive_features
from segments.profiles import FieldDef as FieldDef
from segments.profiles import ProfileSchema as ProfileSchema
from segments.profiles import ProfileValidator as ProfileValidator
from segments.profiles import Rejection as Rejection
from segments.profiles import read_chunks as read_chunks
from segments.profiles import to_records as to_records
from segments.rules.ruleset import SegmentSet as SegmentSet
from segments.rules.ruleset import load_segments as load_segments
from segments.rules.ruleset import parse_segments as parse_segments

__all__ = [
    "AudienceSegments",
    "AudienceWarningError",
    "ClusterModel",
    "ClusterSpec",
    "ConfigError",
    "DerivedFields",
    "ExclusiveGroup",
    "FeatureConfig",
    "FieldDef",
    "MailsmithError",
    "MinSizes",
    "PercentileThreshold",
    "ProfileDataError",
    "ProfileSchema",
    "ProfileValidator",
    "Rejection",
    "SegmentDocument",
    "SegmentRuleError",
    "SegmentSet",
    "SizeWarning",
    "derive_audience",
    "derive_features",
    "load_segments",
    "parse_segment_document",
    "parse_segments",
    "read_chunks",
    "to_records",
]

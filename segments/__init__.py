"""mailsmith's audience side: profiles, segment rules, features, clusters, experiments.

Knows nothing of Jinja or MJML.
"""

from .audience import AudienceSegments as AudienceSegments
from .audience import PercentileThreshold as PercentileThreshold
from .audience import SegmentDocument as SegmentDocument
from .audience import derive_audience as derive_audience
from .audience import parse_segment_document as parse_segment_document
from .clusters import ClusterModel as ClusterModel
from .clusters import ClusterSpec as ClusterSpec
from .derived import DerivedFields as DerivedFields
from .errors import AudienceWarningError as AudienceWarningError
from .errors import ConfigError as ConfigError
from .errors import MailsmithError as MailsmithError
from .errors import ProfileDataError as ProfileDataError
from .errors import SegmentRuleError as SegmentRuleError
from .features import FeatureConfig as FeatureConfig
from .features import derive_features as derive_features
from .hierarchy import ExclusiveGroup as ExclusiveGroup
from .hierarchy import MinSizes as MinSizes
from .hierarchy import SizeWarning as SizeWarning
from .profiles import FieldDef as FieldDef
from .profiles import ProfileSchema as ProfileSchema
from .profiles import ProfileValidator as ProfileValidator
from .profiles import Rejection as Rejection
from .profiles import read_chunks as read_chunks
from .profiles import to_records as to_records
from .rules import SegmentSet as SegmentSet
from .rules import load_segments as load_segments
from .rules import parse_segments as parse_segments

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

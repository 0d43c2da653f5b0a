"""mailsmith's audience side: profiles, segment rules, features, clusters, experiments.

Knows nothing of Jinja or MJML.
"""

from .errors import ConfigError as ConfigError
from .errors import MailsmithError as MailsmithError
from .errors import ProfileDataError as ProfileDataError
from .errors import SegmentRuleError as SegmentRuleError
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
    "ConfigError",
    "FieldDef",
    "MailsmithError",
    "ProfileDataError",
    "ProfileSchema",
    "ProfileValidator",
    "Rejection",
    "SegmentRuleError",
    "SegmentSet",
    "load_segments",
    "parse_segments",
    "read_chunks",
    "to_records",
]

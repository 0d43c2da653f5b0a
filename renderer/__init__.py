"""mailsmith's content side: templates, blocks, compile-once rendering, builds."""

from segments.errors import ConfigError as ConfigError
from segments.errors import MailsmithError as MailsmithError
from segments.errors import ProfileDataError as ProfileDataError
from segments.errors import SegmentRuleError as SegmentRuleError

from .build import BuildOptions as BuildOptions
from .build import CampaignBuild as CampaignBuild
from .build import Progress as Progress
from .build import build_campaign as build_campaign
from .build import iter_build as iter_build
from .build import too_many_rejected as too_many_rejected
from .campaign import Campaign as Campaign
from .campaign import adhoc_campaign as adhoc_campaign
from .campaign import demo_campaign_path as demo_campaign_path
from .campaign import load_campaign as load_campaign
from .compiler import CompiledTemplate as CompiledTemplate
from .compiler import compile_template as compile_template
from .errors import MjmlError as MjmlError
from .errors import OutputError as OutputError
from .errors import TemplateError as TemplateError
from .errors import UndefinedFieldError as UndefinedFieldError
from .naive import NaivePipeline as NaivePipeline
from .preview import render_profile as render_profile
from .preview import render_segment as render_segment
from .runtime import CampaignRuntime as CampaignRuntime
from .runtime import Rendered as Rendered

__all__ = [
    "BuildOptions",
    "Campaign",
    "CampaignBuild",
    "CampaignRuntime",
    "CompiledTemplate",
    "ConfigError",
    "MailsmithError",
    "MjmlError",
    "NaivePipeline",
    "OutputError",
    "ProfileDataError",
    "Progress",
    "Rendered",
    "SegmentRuleError",
    "TemplateError",
    "UndefinedFieldError",
    "adhoc_campaign",
    "build_campaign",
    "compile_template",
    "demo_campaign_path",
    "iter_build",
    "load_campaign",
    "render_profile",
    "render_segment",
    "too_many_rejected",
]

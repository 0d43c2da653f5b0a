"""mailsmith's content side: templates, blocks, compile-once rendering, builds."""

from renderer.build.driver import BuildOptions as BuildOptions
from renderer.build.driver import CampaignBuild as CampaignBuild
from renderer.build.driver import Progress as Progress
from renderer.build.driver import build_campaign as build_campaign
from renderer.build.driver import iter_build as iter_build
from renderer.build.driver import too_many_rejected as too_many_rejected
from renderer.campaign import Campaign as Campaign
from renderer.campaign import adhoc_campaign as adhoc_campaign
from renderer.campaign import demo_campaign_path as demo_campaign_path
from renderer.campaign import load_campaign as load_campaign
from renderer.compile import CompiledTemplate as CompiledTemplate
from renderer.compile import compile_template as compile_template
from renderer.naive import NaivePipeline as NaivePipeline
from renderer.preview import render_profile as render_profile
from renderer.preview import render_segment as render_segment
from renderer.runtime import CampaignRuntime as CampaignRuntime
from renderer.runtime import Rendered as Rendered
from segments.errors import ConfigError as ConfigError
from segments.errors import MailsmithError as MailsmithError
from segments.errors import MjmlError as MjmlError
from segments.errors import OutputError as OutputError
from segments.errors import ProfileDataError as ProfileDataError
from segments.errors import SegmentRuleError as SegmentRuleError
from segments.errors import TemplateError as TemplateError
from segments.errors import UndefinedFieldError as UndefinedFieldError

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

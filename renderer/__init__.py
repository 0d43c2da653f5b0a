"""mailsmith's content side: templates, blocks, compile-once rendering, builds.

The public API, one function per CLI command::

    build / iter_build              mailsmith build (to the end / as Progress events)
    render_profile / render_segment mailsmith render --profile / --segment
    serve_preview / PreviewSession  mailsmith preview (the app / its library layer)
    segment_report / explain_profile mailsmith segments / segments --explain
    ab_report / ab_reports_html     mailsmith ab report (--html)
    snapshot                        mailsmith snapshot (personas from load_fixtures)
    check_campaign                  mailsmith check (format_findings: --format json/github)
    extract_messages / init_catalog / update_catalogs / compile_catalogs  mailsmith i18n

plus the campaign loaders, the options and result types, and the error tree.

Names resolve lazily (PEP 562): ``import renderer`` costs nothing, and pandas,
scipy, Jinja and MJML load only when a name that needs them is first used, so
``mailsmith --help`` answers at once. Type checkers see the real imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The subpackage ``renderer.build`` must be imported before the function ``build``
# below is bound: importing a subpackage sets the parent's attribute of the same
# name, and would otherwise replace the function with the package. Its __init__
# is empty. Reach its modules with ``from renderer.build.driver import ...``.
importlib.import_module("renderer.build")

if TYPE_CHECKING:
    from renderer.build.driver import BuildOptions as BuildOptions
    from renderer.build.driver import CampaignBuild as CampaignBuild
    from renderer.build.driver import Progress as Progress
    from renderer.build.driver import build_campaign as build_campaign
    from renderer.build.driver import iter_build as iter_build
    from renderer.build.driver import parse_max_rejected as parse_max_rejected
    from renderer.build.driver import too_many_rejected as too_many_rejected
    from renderer.campaign import Campaign as Campaign
    from renderer.campaign import adhoc_campaign as adhoc_campaign
    from renderer.campaign import demo_campaign_path as demo_campaign_path
    from renderer.campaign import load_campaign as load_campaign
    from renderer.check.findings import Finding as Finding
    from renderer.check.findings import Severity as Severity
    from renderer.check.formats import by_file as findings_by_file
    from renderer.check.formats import format_findings as format_findings
    from renderer.check.runner import CheckReport as CheckReport
    from renderer.check.runner import check_campaign as check_campaign
    from renderer.compile.template import CompiledTemplate as CompiledTemplate
    from renderer.compile.template import compile_template as compile_template
    from renderer.fixtures import Fixture as Fixture
    from renderer.fixtures import load_fixtures as load_fixtures
    from renderer.i18n.tools import CatalogFile as CatalogFile
    from renderer.i18n.tools import compile_catalogs as compile_catalogs
    from renderer.i18n.tools import extract_messages as extract_messages
    from renderer.i18n.tools import init_catalog as init_catalog
    from renderer.i18n.tools import update_catalogs as update_catalogs
    from renderer.naive import NaivePipeline as NaivePipeline
    from renderer.preview import render_profile as render_profile
    from renderer.preview import render_segment as render_segment
    from renderer.reports.ab import report_from_manifest as ab_report
    from renderer.reports.ab import reports_html as ab_reports_html
    from renderer.reports.segments import ProfileExplanation as ProfileExplanation
    from renderer.reports.segments import SegmentReport as SegmentReport
    from renderer.reports.segments import explain_profile as explain_profile
    from renderer.reports.segments import segment_report as segment_report
    from renderer.reports.tables import AB_COLUMNS as AB_COLUMNS
    from renderer.reports.tables import ab_notes as ab_notes
    from renderer.reports.tables import ab_rows as ab_rows
    from renderer.reports.tables import shown as shown
    from renderer.reports.tables import summary_rows as summary_rows
    from renderer.runtime import CampaignRuntime as CampaignRuntime
    from renderer.runtime import Rendered as Rendered
    from renderer.serve.server import serve_preview as serve_preview
    from renderer.serve.session import PreviewSession as PreviewSession
    from renderer.snapshots.runner import SnapshotOptions as SnapshotOptions
    from renderer.snapshots.runner import SnapshotReport as SnapshotReport
    from renderer.snapshots.runner import snapshot as snapshot
    from renderer.specs import inferred_types as inferred_types
    from segments.errors import AudienceWarningError as AudienceWarningError
    from segments.errors import CheckFailedError as CheckFailedError
    from segments.errors import ConfigError as ConfigError
    from segments.errors import MailsmithError as MailsmithError
    from segments.errors import MjmlError as MjmlError
    from segments.errors import OutputError as OutputError
    from segments.errors import ProfileDataError as ProfileDataError
    from segments.errors import SegmentRuleError as SegmentRuleError
    from segments.errors import TemplateError as TemplateError
    from segments.errors import UndefinedFieldError as UndefinedFieldError
    from segments.experiments.stats import AbReport as AbReport

__all__ = [
    "AB_COLUMNS",
    "ab_notes",
    "ab_report",
    "ab_reports_html",
    "ab_rows",
    "adhoc_campaign",
    "build",
    "check_campaign",
    "demo_campaign_path",
    "explain_profile",
    "findings_by_file",
    "format_findings",
    "inferred_types",
    "iter_build",
    "load_campaign",
    "parse_max_rejected",
    "render_profile",
    "render_segment",
    "segment_report",
    "serve_preview",
    "shown",
    "snapshot",
    "load_fixtures",
    "summary_rows",
    "too_many_rejected",
    "AbReport",
    "AudienceWarningError",
    "BuildOptions",
    "Campaign",
    "CampaignBuild",
    "CheckFailedError",
    "CheckReport",
    "ConfigError",
    "Finding",
    "MailsmithError",
    "MjmlError",
    "OutputError",
    "ProfileDataError",
    "PreviewSession",
    "ProfileExplanation",
    "Progress",
    "Rendered",
    "SegmentReport",
    "SegmentRuleError",
    "Severity",
    "TemplateError",
    "UndefinedFieldError",
    "Fixture",
    "SnapshotOptions",
    "SnapshotReport",
    "CatalogFile",
    "extract_messages",
    "init_catalog",
    "update_catalogs",
    "compile_catalogs",
]

# name -> (module, attribute): where each lazily resolved name lives.
_LAZY: dict[str, tuple[str, str]] = {
    "inferred_types": ("renderer.specs", "inferred_types"),
    "summary_rows": ("renderer.reports.tables", "summary_rows"),
    "ab_rows": ("renderer.reports.tables", "ab_rows"),
    "ab_notes": ("renderer.reports.tables", "ab_notes"),
    "AB_COLUMNS": ("renderer.reports.tables", "AB_COLUMNS"),
    "shown": ("renderer.reports.tables", "shown"),
    "AbReport": ("segments.experiments.stats", "AbReport"),
    "AudienceWarningError": ("segments.errors", "AudienceWarningError"),
    "BuildOptions": ("renderer.build.driver", "BuildOptions"),
    "Campaign": ("renderer.campaign", "Campaign"),
    "CampaignBuild": ("renderer.build.driver", "CampaignBuild"),
    "CheckFailedError": ("segments.errors", "CheckFailedError"),
    "CheckReport": ("renderer.check.runner", "CheckReport"),
    "check_campaign": ("renderer.check.runner", "check_campaign"),
    "Finding": ("renderer.check.findings", "Finding"),
    "findings_by_file": ("renderer.check.formats", "by_file"),
    "format_findings": ("renderer.check.formats", "format_findings"),
    "Severity": ("renderer.check.findings", "Severity"),
    "ConfigError": ("segments.errors", "ConfigError"),
    "MailsmithError": ("segments.errors", "MailsmithError"),
    "MjmlError": ("segments.errors", "MjmlError"),
    "OutputError": ("segments.errors", "OutputError"),
    "ProfileDataError": ("segments.errors", "ProfileDataError"),
    "ProfileExplanation": ("renderer.reports.segments", "ProfileExplanation"),
    "Progress": ("renderer.build.driver", "Progress"),
    "Rendered": ("renderer.runtime", "Rendered"),
    "SegmentReport": ("renderer.reports.segments", "SegmentReport"),
    "SegmentRuleError": ("segments.errors", "SegmentRuleError"),
    "TemplateError": ("segments.errors", "TemplateError"),
    "UndefinedFieldError": ("segments.errors", "UndefinedFieldError"),
    "ab_report": ("renderer.reports.ab", "report_from_manifest"),
    "ab_reports_html": ("renderer.reports.ab", "reports_html"),
    "adhoc_campaign": ("renderer.campaign", "adhoc_campaign"),
    "demo_campaign_path": ("renderer.campaign", "demo_campaign_path"),
    "explain_profile": ("renderer.reports.segments", "explain_profile"),
    "iter_build": ("renderer.build.driver", "iter_build"),
    "load_campaign": ("renderer.campaign", "load_campaign"),
    "parse_max_rejected": ("renderer.build.driver", "parse_max_rejected"),
    "render_profile": ("renderer.preview", "render_profile"),
    "render_segment": ("renderer.preview", "render_segment"),
    "segment_report": ("renderer.reports.segments", "segment_report"),
    "serve_preview": ("renderer.serve.server", "serve_preview"),
    "PreviewSession": ("renderer.serve.session", "PreviewSession"),
    "too_many_rejected": ("renderer.build.driver", "too_many_rejected"),
    "snapshot": ("renderer.snapshots.runner", "snapshot"),
    "SnapshotOptions": ("renderer.snapshots.runner", "SnapshotOptions"),
    "SnapshotReport": ("renderer.snapshots.runner", "SnapshotReport"),
    "load_fixtures": ("renderer.fixtures", "load_fixtures"),
    "Fixture": ("renderer.fixtures", "Fixture"),
    "CatalogFile": ("renderer.i18n.tools", "CatalogFile"),
    "extract_messages": ("renderer.i18n.tools", "extract_messages"),
    "init_catalog": ("renderer.i18n.tools", "init_catalog"),
    "update_catalogs": ("renderer.i18n.tools", "update_catalogs"),
    "compile_catalogs": ("renderer.i18n.tools", "compile_catalogs"),
}

# Names exported before the API was curated, still importable for existing callers
# (tests, benchmarks) but not part of __all__: import them from their modules.
_FORMER: dict[str, tuple[str, str]] = {
    "build_campaign": ("renderer.build.driver", "build_campaign"),
    "CampaignRuntime": ("renderer.runtime", "CampaignRuntime"),
    "CompiledTemplate": ("renderer.compile.template", "CompiledTemplate"),
    "compile_template": ("renderer.compile.template", "compile_template"),
    "NaivePipeline": ("renderer.naive", "NaivePipeline"),
}


def build(campaign: Campaign, options: BuildOptions | None = None) -> dict[str, Any]:
    """Build ``campaign`` to the end and return its summary (what summary.json holds).

    :func:`iter_build` runs the same build as a generator of :class:`Progress`.
    """
    from renderer.build.driver import build_campaign

    return build_campaign(campaign, options)


if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error

    def __getattr__(name: str) -> Any:
        """Import the module behind ``name`` on first use (PEP 562)."""
        try:
            module, attribute = _LAZY.get(name) or _FORMER[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # later lookups are plain attribute reads
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

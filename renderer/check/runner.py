"""``mailsmith check``: every rule over a campaign, as one report.

Two parts, in order:

* static (:func:`static_findings`): the names every template, block and header
  reads, segments, experiments and block fallbacks; no profile is read beyond the
  first chunk (and only for a campaign without ``schema:``). ``build`` runs this
  part first and refuses to start on its errors (:func:`raise_for_static_errors`).
* data and rendered: the token audit over the profile file, then representative
  recipients rendered by the build's own stages and their emails checked; then
  every function of :data:`RULES` (the hook for rules that read the compiled
  emails, e.g. the caniemail lint).

A rule is switched off for a campaign with ``check: {ignore: [rule]}`` and on a line
with ``{# mailsmith: ignore[rule] #}`` (on that line or the line before it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from renderer.campaign import Campaign
from renderer.check.audit import BareToken, audit_findings, bare_tokens, optional_fields
from renderer.check.findings import Finding, Severity
from renderer.check.names import check_blocks, check_names, name_scope, parse_sources
from renderer.check.rendered import (
    rendered_findings,
    representatives,
    subject_source_findings,
)
from renderer.check.sources import CampaignSources, campaign_sources
from renderer.content import AssembledTemplate, assemble
from renderer.env import make_environment
from renderer.runtime import (
    CampaignRuntime,
    Rendered,
    block_overrides,
    load_experiments,
    localizer,
)
from renderer.specs import content_folders
from segments.errors import CheckFailedError, MailsmithError

# The rule id of an error that stops a part of the check, by the error's class name.
_ERROR_RULES = {
    "ConfigError": "config",
    "SegmentRuleError": "segments",
    "ProfileDataError": "profiles",
    "MjmlError": "mjml",
    "TemplateError": "template",
}


@dataclass
class CheckContext:
    """What a rule of :data:`RULES` reads: the campaign, its sources, and (when the
    rendered part ran) the runtime with the compiled template and the representatives."""

    campaign: Campaign
    sources: CampaignSources
    assembled: AssembledTemplate  # as the designer wrote it, every block in place
    runtime: CampaignRuntime | None = None
    emails: list[Rendered] = field(default_factory=list)


Rule = Callable[[CheckContext], Iterable[Finding]]


def caniemail_rule(context: CheckContext) -> list[Finding]:
    """The caniemail lint (``renderer/check/caniemail.py``) for the campaign's clients."""
    from renderer.check.caniemail import lint_template, resolve_clients

    clients = resolve_clients(context.campaign.check.clients, file=context.campaign.file)
    return lint_template(context.assembled, clients)


# Rules that read the compiled template or the representatives, after the rendered checks.
RULES: list[Rule] = [caniemail_rule]


@dataclass
class CheckReport:
    """The findings of ``check`` (ignored ones left out), sorted by file and line."""

    campaign: str
    findings: list[Finding]
    representatives: int = 0
    ignored: int = 0

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    @property
    def errors(self) -> int:
        return self.count(Severity.ERROR)

    @property
    def warnings(self) -> int:
        return self.count(Severity.WARNING)

    def failed(self, strict: bool = False) -> bool:
        """True when the check fails: errors, or warnings under ``strict``."""
        return bool(self.errors or (strict and self.warnings))

    def exit_code(self, strict: bool = False) -> int:
        """0, or :attr:`CheckFailedError.exit_code` (8) when the check fails."""
        return CheckFailedError.exit_code if self.failed(strict) else 0


def error_finding(exc: MailsmithError, campaign: Campaign) -> Finding:
    """An error that stops a part of the check, as a finding at its location."""
    rule = next(
        (_ERROR_RULES[c.__name__] for c in type(exc).__mro__ if c.__name__ in _ERROR_RULES),
        "error",
    )
    return Finding(
        exc.file or campaign.file, exc.line, rule, Severity.ERROR, exc.message, exc.hint or ""
    )


@dataclass
class _Static:
    findings: list[Finding]
    sources: CampaignSources | None = None
    assembled: AssembledTemplate | None = None
    tokens: list[BareToken] = field(default_factory=list)  # for the data audit
    failure: MailsmithError | None = None  # what stopped the static part, as raised


def _static(campaign: Campaign) -> _Static:
    try:
        env = make_environment(campaign.missing_token, localizer=localizer(campaign))
        scope = name_scope(campaign, env)
        folders = content_folders(campaign)
        overrides = block_overrides(load_experiments(campaign))
    except MailsmithError as exc:
        return _Static([error_finding(exc, campaign)], failure=exc)
    try:
        assembled: AssembledTemplate | None = assemble(
            folders, campaign.template, overrides, named_in=campaign.file
        )
    except MailsmithError as exc:
        assembled, failure = None, exc
    used = set(assembled.blocks) if assembled is not None else set()
    findings = list(check_blocks(folders, scope, used))
    if assembled is None:
        if not any(f.rule == "fallback-cycle" for f in findings):
            findings.append(error_finding(failure, campaign))
        return _Static(findings, failure=failure)
    sources = campaign_sources(campaign, assembled)
    parsed, syntax = parse_sources([*sources.content, *sources.headers], env)
    findings += syntax
    findings += check_names(scope, parsed)
    findings += subject_source_findings(sources)
    guards = {spec.file: set(spec.fields) for spec in assembled.blocks.values()}
    tokens = bare_tokens(parsed, optional_fields(scope.fields), guards)
    return _Static(findings, sources, assembled, tokens)


def _kept(
    campaign: Campaign, sources: CampaignSources | None, findings: list[Finding]
) -> list[Finding]:
    """The findings no ``ignore`` setting switches off, sorted by file and line."""
    ignored = set(campaign.check.ignore)
    kept = {
        f
        for f in findings
        if f.rule not in ignored
        and (sources is None or not sources.is_ignored(f.rule, f.file, f.line))
    }
    return sorted(kept, key=lambda f: (f.file, f.line or 0, f.rule, f.message))


def static_findings(campaign: Campaign) -> list[Finding]:
    """The static part of ``check`` (names, segments, blocks), ignore settings applied."""
    static = _static(campaign)
    return _kept(campaign, static.sources, static.findings)


def raise_for_static_errors(campaign: Campaign) -> None:
    """Raise :class:`CheckFailedError` listing the static errors, if any (``build``).

    An error that stopped the static part (an invalid segments file, a missing
    template) is raised as it is, with its own exit code, as the build would raise it.
    """
    static = _static(campaign)
    if static.failure is not None:
        raise static.failure
    findings = _kept(campaign, static.sources, static.findings)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if not errors:
        return
    listed = "\n  ".join(f"{_where(f)}: {f.message} [{f.rule}]" for f in errors[:20])
    more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
    raise CheckFailedError(
        f"the campaign has {len(errors)} error(s); nothing was built:\n  {listed}{more}",
        file=campaign.file,
        hint="run `mailsmith check` for hints, or build with --no-check",
    )


def _where(finding: Finding) -> str:
    return f"{finding.file}:{finding.line}" if finding.line else finding.file


def check_campaign(campaign: Campaign, *, as_of: datetime | None = None) -> CheckReport:
    """Every rule over ``campaign``: static, data audit, rendered representatives and
    :data:`RULES`. The rendered part runs only when the static part found no error."""
    static = _static(campaign)
    findings = list(static.findings)
    count = 0
    if (
        static.sources is not None
        and static.assembled is not None
        and not any(f.severity is Severity.ERROR for f in findings)
    ):
        try:
            findings += audit_findings(campaign, static.tokens)
            runtime, emails = representatives(campaign, as_of)
            count = len(emails)
            findings += rendered_findings(emails, static.sources, campaign)
            context = CheckContext(campaign, static.sources, static.assembled, runtime, emails)
            for rule in RULES:
                findings += rule(context)
        except MailsmithError as exc:
            findings.append(error_finding(exc, campaign))
    kept = _kept(campaign, static.sources, findings)
    return CheckReport(campaign.name, kept, count, ignored=len(set(findings)) - len(kept))

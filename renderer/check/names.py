"""The static part of ``check``: every name the emails read must exist.

A name a template, block, subject, preheader or URL reads is a schema field, a
derived feature, an exclusive group or cluster, a campaign ``vars`` key, a loop or
``set`` variable, or a filter, test or global of the engine; anything else is
an ``unknown-name`` error with a did-you-mean. Segments named by ``in_segment('x')``
or a block's ``show_if``, experiments named by ``variant('x')``, and block fallback
chains are checked too. Names come from Jinja's own parse of the designer's
source (``nodes.Name`` with its ``lineno``), so every finding is at their line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from renderer.campaign import Campaign, infer_campaign_schema
from renderer.check.findings import Finding, Severity
from renderer.check.sources import Source, closest
from renderer.content import ContentFolders, read_source, split_front_matter
from renderer.i18n import LOCALE_NAMES
from renderer.runtime import load_experiments
from renderer.specs import schema_of, segment_document
from segments.errors import SegmentRuleError
from segments.features.scores import FEATURE_TYPES
from segments.yamlsrc import LineDict

# What every recipient's context holds besides its fields (see CampaignRuntime.context).
CONTEXT_NAMES = frozenset(
    {"profile", "recipient_id", "email", "segments", "variants", "vars", "as_of", "campaign"}
)
HEADER_NAMES = frozenset({"subject", "preheader"})  # rendered before the body, not before
# Names Jinja itself provides inside loops, macros and call blocks.
JINJA_NAMES = frozenset({"loop", "caller", "varargs", "kwargs", "self"})
FALLBACK_FILTERS = frozenset({"fallback", "default", "d"})


@dataclass
class NameScope:
    """Every name a campaign's emails may read, by what it is."""

    fields: dict[str, Any]  # schema fields: name -> FieldSpec-like (required, default)
    derived: set[str]  # features, clusters, exclusive groups, variant tokens
    vars: Mapping[str, Any]
    segments: set[str]
    experiments: set[str]
    env: SandboxedEnvironment
    unsubscribe: bool = False
    signed: bool = False  # `unsubscribe:`: its token (and preference URL) in every context
    declared: set[str] = field(default_factory=set)  # loop and set variables, all files

    def known(self, *, header: bool) -> set[str]:
        """Names a content file (``header=False``) or a campaign header may read."""
        names = {*self.fields, *self.derived, *CONTEXT_NAMES, *self.env.globals, *JINJA_NAMES}
        if self.signed:
            names |= {"unsubscribe_token", "preferences_url"}
        if not header:
            names |= HEADER_NAMES | ({"unsubscribe_url"} if self.unsubscribe else set())
        return names | self.declared


def name_scope(campaign: Campaign, env: SandboxedEnvironment) -> NameScope:
    """The names ``campaign`` defines: schema (declared or inferred from the first chunk),
    derived features when it has events, its segments document and experiments."""
    schema = schema_of(campaign) or infer_campaign_schema(campaign)
    specs = {name: campaign.schema_.get(name) or schema.fields[name] for name in schema.fields}
    document = segment_document(campaign)
    experiments = load_experiments(campaign)
    derived = set(FEATURE_TYPES) if campaign.events is not None else set()
    if campaign.recommendations is not None:  # segments/recommend/prepass.py
        derived.add("recommendations")
    derived |= {spec.name for spec in document.clusters}
    derived |= {group.name for group in document.exclusive}
    derived |= {name for e in experiments for v in e.variants for name in v.tokens}
    if campaign.i18n is not None:
        derived |= set(LOCALE_NAMES)  # the recipient's lang, text_dir, locale_id
    if campaign.coupons is not None:  # its segment's recipients' code (renderer/coupons.py)
        derived.add(campaign.coupons.field)
    for group in document.exclusive:  # as the audience stage refuses it, before any read
        if group.name in specs:
            raise SegmentRuleError(
                f"exclusive group '{group.name}' has the name of a profile field",
                file=group.file,
                line=group.line,
                hint="the group becomes a field of that name: rename the group",
            )
    segments = {*document.segment_names, *(c for g in document.exclusive for c in g.columns)}
    return NameScope(
        fields=specs,
        derived=derived,
        vars=campaign.vars,
        segments=segments,
        experiments={e.key for e in experiments},
        env=env,
        unsubscribe=bool(campaign.unsubscribe_url or campaign.unsubscribe),
        signed=campaign.unsubscribe is not None,
    )


def parse_sources(
    sources: list[Source], env: SandboxedEnvironment
) -> tuple[list[tuple[Source, nodes.Template]], list[Finding]]:
    """Each source's Jinja tree; a syntax error is a finding at its line."""
    parsed, findings = [], []
    for source in sources:
        try:
            parsed.append((source, env.parse(source.text)))
        except TemplateSyntaxError as exc:
            findings.append(
                Finding(
                    source.file,
                    source.line(exc.lineno or 1),
                    "syntax-error",
                    Severity.ERROR,
                    f"{_prefix(source)}template syntax error: {exc.message}",
                    "see the Jinja template documentation for the tag's form",
                )
            )
    return parsed, findings


def check_names(scope: NameScope, parsed: list[tuple[Source, nodes.Template]]) -> Iterator[Finding]:
    """``unknown-name``, ``unknown-filter``, ``unknown-test``, ``unknown-var``,
    ``unknown-segment`` and ``unknown-experiment`` findings of every parsed source."""
    for _, tree in parsed:
        scope.declared |= {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
        scope.declared |= {m.name for m in tree.find_all(nodes.Macro)}  # macros are names too
    for source, tree in parsed:
        known = scope.known(header=bool(source.key))
        yield from _names(source, tree, known)
        yield from _filters_and_tests(source, tree, scope.env)
        yield from _attributes(source, tree, scope)
        yield from _calls(source, tree, scope)


def _prefix(source: Source) -> str:
    """``subject: `` before a message about a campaign header."""
    return f"{source.key}: " if source.key else ""


def _finding(source: Source, node: nodes.Node, rule: str, message: str, hint: str) -> Finding:
    return Finding(
        source.file, source.line(node.lineno), rule, Severity.ERROR, _prefix(source) + message, hint
    )


def _did_you_mean(name: str, candidates: set[str] | Mapping[str, Any], what: str) -> str:
    guess = closest(name, candidates)
    if guess is not None:
        return f"did you mean '{guess}'?"
    if name == "unsubscribe_url":
        return "set `unsubscribe_url:` in the campaign file"
    if len(candidates) > 12:
        return f"no {what[:-1] if what.endswith('s') else what} is close: check the spelling"
    return f"known {what}: {', '.join(sorted(candidates)) or '(none)'}"


def _names(source: Source, tree: nodes.Template, known: set[str]) -> Iterator[Finding]:
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name not in known:
            yield _finding(
                source,
                node,
                "unknown-name",
                f"'{node.name}' is not a field, feature, group, variable or loop name",
                _did_you_mean(node.name, known, "names"),
            )


def _filters_and_tests(
    source: Source, tree: nodes.Template, env: SandboxedEnvironment
) -> Iterator[Finding]:
    for node in tree.find_all(nodes.Filter):
        if node.name not in env.filters:
            hint = _did_you_mean(node.name, set(env.filters), "filters")
            yield _finding(source, node, "unknown-filter", f"no filter '{node.name}'", hint)
    for test in tree.find_all(nodes.Test):
        if test.name not in env.tests:
            hint = _did_you_mean(test.name, set(env.tests), "tests")
            yield _finding(source, test, "unknown-test", f"no test '{test.name}'", hint)


def _key(node: nodes.Node) -> tuple[str, str] | None:
    """(base name, key) for ``base.key`` or ``base['key']``."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return node.node.name, node.attr
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.node, nodes.Name)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.node.name, node.arg.value
    return None


def _attributes(source: Source, tree: nodes.Template, scope: NameScope) -> Iterator[Finding]:
    """``vars.x`` must be a vars key, ``profile.x`` a field, and ``p.x`` a key of the
    items when ``p`` loops over a vars list of mappings."""
    items = _loop_item_keys(tree, scope.vars)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        found = _key(node)
        if found is None:
            continue
        base, key = found
        if base == "vars":
            allowed: Mapping[str, Any] | set[str] = scope.vars
            what = "vars keys"
        elif base == "profile":
            allowed, what = {*scope.fields, *scope.derived}, "fields"
        elif base in items:
            allowed, what = items[base], f"keys of the items of '{base}'"
        else:
            continue
        if key not in allowed:
            yield _finding(
                source,
                node,
                "unknown-var" if base == "vars" else "unknown-name",
                f"'{base}.{key}' is not defined",
                _did_you_mean(key, set(allowed), what),
            )


def _loop_item_keys(tree: nodes.Template, values: Mapping[str, Any]) -> dict[str, set[str]]:
    """Loop variables over a ``vars`` list of mappings, and the keys those items have."""
    found: dict[str, set[str]] = {}
    for loop in tree.find_all(nodes.For):
        iterable = loop.iter
        while isinstance(iterable, nodes.Getitem) and isinstance(iterable.arg, nodes.Slice):
            iterable = iterable.node
        key = _key(iterable)
        if key is None or key[0] != "vars" or not isinstance(loop.target, nodes.Name):
            continue
        items = values.get(key[1])
        if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
            found[loop.target.name] = {str(k) for item in items for k in item}
    return found


def _calls(source: Source, tree: nodes.Template, scope: NameScope) -> Iterator[Finding]:
    """``in_segment('x')`` names a segment, ``variant('x')`` an experiment."""
    for call in tree.find_all(nodes.Call):
        if not isinstance(call.node, nodes.Name) or not call.args:
            continue
        first = call.args[0]
        if not isinstance(first, nodes.Const) or not isinstance(first.value, str):
            continue
        if call.node.name == "in_segment" and first.value not in scope.segments:
            hint = _did_you_mean(first.value, scope.segments, "segments")
            yield _finding(
                source, call, "unknown-segment", f"unknown segment '{first.value}'", hint
            )
        if call.node.name == "variant" and first.value not in scope.experiments:
            hint = _did_you_mean(first.value, scope.experiments, "experiments")
            yield _finding(
                source, call, "unknown-experiment", f"unknown experiment '{first.value}'", hint
            )


def check_blocks(folders: ContentFolders, scope: NameScope, used: set[str]) -> Iterator[Finding]:
    """Blocks' front matter: ``show_if`` names a segment, ``fields`` name fields, and no
    ``fallback`` chain loops (checked over every block in the folders, before assembly)."""
    fallbacks: dict[str, tuple[str, str, int]] = {}  # name -> (fallback, file, line)
    for name, (file, meta) in _block_headers(folders).items():
        fallback = meta.get("fallback")
        if isinstance(fallback, str):
            fallbacks[name] = (fallback, file, meta.line_of("fallback") or 1)
        if name not in used:
            continue
        show_if = meta.get("show_if")
        if isinstance(show_if, str) and show_if not in scope.segments:
            yield Finding(
                file,
                meta.line_of("show_if") or 1,
                "unknown-segment",
                Severity.ERROR,
                f"block '{name}': show_if names unknown segment '{show_if}'",
                _did_you_mean(show_if, scope.segments, "segments"),
            )
        for wanted in meta.get("fields") or []:
            if isinstance(wanted, str) and wanted not in {*scope.fields, *scope.derived}:
                yield Finding(
                    file,
                    meta.line_of("fields") or 1,
                    "unknown-name",
                    Severity.ERROR,
                    f"block '{name}': fields names unknown field '{wanted}'",
                    _did_you_mean(wanted, {*scope.fields, *scope.derived}, "fields"),
                )
    yield from _fallback_cycles(fallbacks)


def _block_headers(folders: ContentFolders) -> dict[str, tuple[str, LineDict]]:
    """Every block's front matter by name (the first folder holding a name wins)."""
    found: dict[str, tuple[str, LineDict]] = {}
    for root in folders.blocks:
        for path in sorted(Path(root).glob("*.mjml")):
            if path.stem in found:
                continue
            meta, _, _ = split_front_matter(read_source(path), str(path))
            found[path.stem] = (str(path), meta if meta is not None else LineDict())
    return found


def _fallback_cycles(fallbacks: dict[str, tuple[str, str, int]]) -> Iterator[Finding]:
    reported: set[str] = set()
    for start in sorted(fallbacks):
        chain, current = [start], fallbacks[start][0]
        while current in fallbacks and current not in chain:
            chain.append(current)
            current = fallbacks[current][0]
        if current != start or start in reported:
            continue
        reported.update(chain)
        _, file, line = fallbacks[start]
        yield Finding(
            file,
            line,
            "fallback-cycle",
            Severity.ERROR,
            "block fallbacks form a cycle: " + " -> ".join([*chain, start]),
            "end the chain with a block that has no fallback",
        )

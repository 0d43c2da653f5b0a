"""The catalogs behind ``mailsmith i18n extract | init | update | compile``: Babel's
tooling (:mod:`babel.messages`) run on a campaign.

- :func:`extract_messages`: the ``{% trans %}`` and ``_()`` messages of the files the
  campaign renders (its template and the blocks it places, experiments' too, found
  with Jinja's own extractor ``jinja2.ext.babel_extract``) and of its ``subject`` and
  ``preheader``, into ``<catalogs>/messages.pot``;
- :func:`init_catalog`: a new locale's ``<catalogs>/<locale>/LC_MESSAGES/messages.po``;
- :func:`update_catalogs`: every locale's ``.po`` merged with the ``.pot``;
- :func:`compile_catalogs`: every ``.po`` to the ``.mo`` a build reads.

``<catalogs>`` is the campaign's ``i18n.catalogs`` (default ``locales`` beside it).
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from jinja2.ext import babel_extract

from renderer.campaign import Campaign
from renderer.content import assemble
from renderer.i18n.locale import iter_locales, parse_locale
from renderer.runtime import block_overrides, load_experiments
from renderer.specs import content_folders
from segments.errors import ConfigError, OutputError
from segments.yamlsrc import LineDict, load_yaml

POT_NAME = "messages.pot"
PO_PATH = "LC_MESSAGES/messages.po"
_OPTIONS = {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}


@dataclass(frozen=True)
class CatalogFile:
    """A catalog file written: its path, locale (None for the template) and counts."""

    path: Path
    locale: str | None
    messages: int
    translated: int = 0


def catalogs_folder(campaign: Campaign) -> Path:
    """The campaign's catalogs folder (``i18n.catalogs``, default ``locales``)."""
    return campaign.path(campaign.i18n.catalogs if campaign.i18n else "locales")


def extract_messages(campaign: Campaign) -> CatalogFile:
    """The campaign's messages into ``<catalogs>/messages.pot``."""
    catalog = Catalog(project=campaign.name, charset="utf-8")
    base = campaign.base_dir
    for path in _rendered_files(campaign):
        with path.open("rb") as handle:
            for line, message, context in _messages(handle.read()):
                catalog.add(message, None, [(_shown(path, base), line)], context=context)
    for line, source in _header_sources(campaign):
        for _, message, context in _messages(source.encode()):
            catalog.add(message, None, [(_shown(Path(campaign.file), base), line)], context=context)
    path = catalogs_folder(campaign) / POT_NAME
    _write(path, lambda handle: write_po(handle, catalog, sort_output=True, omit_header=False))
    return CatalogFile(path, None, len(catalog))


def init_catalog(campaign: Campaign, locale: str) -> CatalogFile:
    """A new ``.po`` for ``locale`` from the ``.pot`` (an existing one is kept: use
    :func:`update_catalogs`)."""
    parsed = parse_locale(locale)
    if parsed is None:
        raise ConfigError(f"{locale!r} is not a known locale", hint="e.g. fr, fr-CA, de, ar")
    name = str(parsed)
    path = catalogs_folder(campaign) / name / PO_PATH
    if path.exists():
        raise ConfigError(
            f"{path} exists", hint="`mailsmith i18n update` merges new messages into it"
        )
    _template(campaign)  # it exists
    catalog = _read(catalogs_folder(campaign) / POT_NAME, name)
    catalog.locale = Locale.parse(name)
    catalog.fuzzy = False
    _write(path, lambda handle: write_po(handle, catalog))
    return CatalogFile(path, name, len(catalog))


def update_catalogs(campaign: Campaign) -> list[CatalogFile]:
    """Each locale's ``.po`` merged with the ``.pot``: new messages added, removed ones
    kept as obsolete, changed ones marked fuzzy."""
    template = _template(campaign)
    written = []
    for name, path in _po_files(campaign):
        catalog = _read(path, name)
        catalog.update(template)
        _write(path, functools.partial(_write_po, catalog=catalog))
        written.append(_counted(path, name, catalog))
    return written


def compile_catalogs(campaign: Campaign) -> list[CatalogFile]:
    """Each locale's ``.po`` compiled to the ``.mo`` beside it (fuzzy entries left out)."""
    written = []
    for name, path in _po_files(campaign):
        catalog = _read(path, name)
        for message, errors in catalog.check():
            if errors:
                raise ConfigError(
                    f"message {message.id!r}: {errors[0]}",
                    file=str(path),
                    line=message.lineno,
                    hint="fix the translation (its placeholders must match the message's)",
                )
        target = path.with_suffix(".mo")
        _write(target, functools.partial(_write_mo, catalog=catalog))
        written.append(_counted(target, name, catalog))
    return written


def _rendered_files(campaign: Campaign) -> list[Path]:
    """The template and block files the campaign renders, in order."""
    assembled = assemble(
        content_folders(campaign),
        campaign.template,
        block_overrides(load_experiments(campaign)),
        named_in=campaign.file,
    )
    files = dict.fromkeys(Path(token.file) for token in assembled.tokens)
    return [path for path in files if path.is_file()]


def _messages(source: bytes) -> Iterator[tuple[int, Any, str | None]]:
    """(line, message, context) of each message in a Jinja ``source``."""
    method: Any = babel_extract  # Babel's stubs ask for a narrower signature than Jinja's
    found = extract(method, io.BytesIO(source), DEFAULT_KEYWORDS, options=_OPTIONS)
    for line, message, _comments, context in found:
        yield line, message, context


def _header_sources(campaign: Campaign) -> Iterator[tuple[int, str]]:
    """(line, Jinja source) of the campaign's subject and preheader, and of each
    experiment variant's (an A/B subject line is translated like the control's)."""
    path = Path(campaign.file)
    data = load_yaml(path) if path.is_file() else None
    for key in ("subject", "preheader"):
        source = getattr(campaign, key)
        if source:
            line = data.line_of(key) if isinstance(data, LineDict) else None
            yield line or 1, source
    for experiment in load_experiments(campaign):
        for variant in experiment.variants:
            for field in ("subject", "preheader"):
                source = getattr(variant, field)
                if source:
                    yield _variant_line(data, experiment.key, variant.name, field), source


def _variant_line(data: Any, key: str, name: str, field: str) -> int:
    """The line of ``field`` in experiment ``key``'s variant ``name`` (else 1)."""
    experiments = data.get("experiments") if isinstance(data, LineDict) else None
    for experiment in experiments if isinstance(experiments, list) else []:
        variants = experiment.get("variants") if isinstance(experiment, LineDict) else None
        if not isinstance(variants, list) or experiment.get("key") != key:
            continue
        for variant in variants:
            if isinstance(variant, LineDict) and variant.get("name") == name:
                return variant.line_of(field) or 1
    return 1


def _shown(path: Path, base: Path) -> str:
    """A catalog location relative to the campaign's folder (``../blocks/x.mjml`` for a
    shipped block), so a catalog names no machine's paths; absolute only across drives."""
    try:
        return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    except ValueError:
        return path.as_posix()


def _template(campaign: Campaign) -> Catalog:
    path = catalogs_folder(campaign) / POT_NAME
    if not path.is_file():
        raise ConfigError(f"no {path}", hint="run `mailsmith i18n extract` first")
    return _read(path, None)


def _read(path: Path, locale: str | None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def _po_files(campaign: Campaign) -> Iterator[tuple[str, Path]]:
    folder = catalogs_folder(campaign)
    for name in iter_locales(folder):
        path = folder / name / PO_PATH
        if path.is_file():
            yield name, path


def _counted(path: Path, locale: str, catalog: Catalog) -> CatalogFile:
    messages = [m for m in catalog if m.id]
    done = sum(1 for m in messages if not m.fuzzy and all(_strings(m.string)))
    return CatalogFile(path, locale, len(messages), done)


def _write_po(handle: io.BytesIO, catalog: Catalog) -> None:
    write_po(handle, catalog)


def _write_mo(handle: io.BytesIO, catalog: Catalog) -> None:
    write_mo(handle, catalog)


def _strings(value: object) -> tuple[object, ...]:
    return value if isinstance(value, tuple) else (value,)


def _write(path: Path, writer: Callable[[io.BytesIO], None]) -> None:
    """Write a catalog file (its folder made); failing to is an :class:`OutputError`."""
    buffer = io.BytesIO()
    writer(buffer)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}", file=str(path)) from None

"""Recipient locales: Babel-backed filters and gettext catalogs, per render.

A campaign opts in with ``i18n:`` (:class:`~renderer.campaign.I18nSpec`). Each
recipient's locale comes from a profile field (BCP 47: ``fr-FR``, ``de``, ``ar``;
``fr_FR`` is accepted too), else the campaign's default. Templates are compiled
once, whatever the locales: the filters and the gettext callables are
``pass_context`` functions that read the recipient's locale from the render's
context (``locale_id``, set by :meth:`Localizer.context_values`), and the
translations of each locale are loaded once and cached on the :class:`Localizer`.

Catalogs are read from ``<catalogs>/<locale>/LC_MESSAGES/messages.mo`` beside the
campaign, chained message by message: ``fr_CA`` then ``fr`` then the default
locale's, then the template's own text.

Translated strings are text: in HTML they are escaped like any other value
(``trusted_translations: true`` lets catalogs hold markup). A message the catalogs
do not translate is the template author's own text, printed as written.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_timedelta
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import NullTranslations, Translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from segments.errors import ConfigError, RecipientError

# language, script, region: the subtags Babel's locale data has (no variants or extensions)
_TAG_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?")
DATE_STYLES = frozenset({"short", "medium", "long", "full"})
MO_PATH = "LC_MESSAGES/messages.mo"
MAX_CACHED_VALUES = 10_000  # distinct locale values resolved once each
MAX_CACHED_MESSAGES = 10_000  # (locale, message) format strings kept
_NO_VARIABLES: dict[str, Any] = {}
LOCALE_NAMES = ("locale_id", "lang", "text_dir")  # what a recipient's context gets
Granularity = Literal["year", "month", "week", "day", "hour", "minute", "second"]


class RecipientLocale(NamedTuple):
    """A resolved locale: Babel's id (``fr_FR``), the BCP 47 tag and text direction."""

    id: str
    tag: str
    dir: str


def parse_locale(value: str) -> Locale | None:
    """``fr-FR``, ``fr_FR`` or ``de`` as a Babel locale; None when it is not one."""
    text = value.strip().replace("_", "-")
    if not _TAG_RE.fullmatch(text):
        return None
    try:
        return Locale.parse(text, sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        return None


def describe(locale: Locale) -> RecipientLocale:
    """The :class:`RecipientLocale` of a Babel locale (direction from CLDR)."""
    identifier = str(locale)
    return RecipientLocale(identifier, identifier.replace("_", "-"), locale.text_direction)


def fallback_chain(locale: str, default: str) -> list[str]:
    """Catalogs to look in, in order: ``fr_CA`` -> ``fr`` -> ``en_US`` -> ``en``."""
    chain: list[str] = []
    for name in (locale, default):
        parts = name.split("_")
        for candidate in ("_".join(parts[:n]) for n in range(len(parts), 0, -1)):
            if candidate not in chain:
                chain.append(candidate)
    return chain


class Localizer:
    """The campaign's locales: each recipient's, resolved once per distinct value, and
    each locale's translations, loaded once (cheap per render)."""

    def __init__(
        self,
        default: str = "en_US",
        *,
        field: str = "locale",
        currency: str = "USD",
        catalogs: Path | None = None,
        invalid: str = "reject",
        trusted: bool = False,
        file: str = "<campaign>",
    ) -> None:
        parsed = parse_locale(default)
        if parsed is None:
            raise ConfigError(
                "i18n.default is not a known locale",
                file=file,
                field="i18n.default",
                hint="a BCP 47 tag such as en-US, fr-FR, de or ar",
            )
        self.default = describe(parsed)
        self.field = field
        self.currency = currency
        self.catalogs = catalogs
        self.invalid = invalid
        self.trusted = trusted
        self._resolved: dict[str, RecipientLocale | None] = {}
        self._translations: dict[str, NullTranslations] = {}
        self._templates: dict[tuple[str, str, bool, bool], Any] = {}

    def resolve(self, value: Any) -> RecipientLocale | None:
        """The recipient's locale from the profile's value: missing gives the default,
        an unknown locale None."""
        if _missing(value):
            return self.default
        text = str(value)
        if text in self._resolved:
            return self._resolved[text]
        parsed = parse_locale(text)
        found = None if parsed is None else describe(parsed)
        if len(self._resolved) < MAX_CACHED_VALUES:  # hostile data: many distinct values
            self._resolved[text] = found
        return found

    def context_values(self, record: Any, warnings: list[str]) -> dict[str, str]:
        """What a recipient's context gets: ``locale_id``, ``lang`` and ``text_dir``.

        An unknown locale rejects the row (``invalid_value`` on the locale field), or
        with ``invalid: default`` gives the default locale and a warning.
        """
        locale = self.resolve(record.get(self.field))
        if locale is None:
            if self.invalid != "default":
                raise RecipientError(
                    f"field '{self.field}' is not a valid locale",
                    reason="invalid_value",
                    field=self.field,
                )
            warnings.append(f"field '{self.field}' is not a valid locale: the default was used")
            locale = self.default
        return {"locale_id": locale.id, "lang": locale.tag, "text_dir": locale.dir}

    def translations(self, locale_id: str) -> NullTranslations:
        """The chained catalogs of ``locale_id`` (loaded once)."""
        found = self._translations.get(locale_id)
        if found is None:
            found = self._translations[locale_id] = self._load(locale_id)
        return found

    def _load(self, locale_id: str) -> NullTranslations:
        chain: NullTranslations | None = None
        for name in fallback_chain(locale_id, self.default.id):
            path = self.catalogs / name / MO_PATH if self.catalogs else None
            if path is None or not path.is_file():
                continue
            with path.open("rb") as handle:
                catalog = Translations(handle)
            if chain is None:
                chain = catalog
            else:
                chain.add_fallback(catalog)
        return chain or NullTranslations()

    def locale_of(self, ctx: Context) -> str:
        """The render's locale id (the default outside a recipient's render)."""
        value = ctx.parent.get("locale_id")  # a recipient's value, set at the top level
        if value is None:
            value = ctx.get("locale_id")
        return value if type(value) is str else self.default.id

    def gettext_callables(self) -> dict[str, Callable[..., Any]]:
        """``gettext`` (also ``_``) and ``ngettext`` with ``jinja2.ext.i18n``'s newstyle
        semantics (the message is always a format string of the keyword arguments,
        ``ngettext`` adds ``num``; Markup when autoescaping), installed as they are.

        Jinja's own newstyle wrappers would call through two more ``Context.call``
        layers per message; a template with a message in every line spent four times
        its render there. Here the translated, escaped format string of each (locale,
        message) is kept (:meth:`_template_of`), so a message costs a dictionary look-up
        and, with arguments, the ``%`` formatting.
        """

        @pass_context
        def gettext(__context: Context, __string: str, **variables: Any) -> Any:
            if variables:
                return _format(self._template_of(__context, __string), variables)
            return self._template_of(__context, __string, formatted=True)

        @pass_context
        def ngettext(
            __context: Context, __singular: str, __plural: str, __num: int, **variables: Any
        ) -> Any:
            variables.setdefault("num", __num)
            locale = self.locale_of(__context)
            translated = self.translations(locale).ngettext(__singular, __plural, __num)
            original = __singular if __num == 1 else __plural
            rv = self._as_text(__context, translated, original)
            return _format(Markup(rv) if __context.eval_ctx.autoescape else rv, variables)

        return {"gettext": gettext, "ngettext": ngettext}

    def _template_of(self, ctx: Context, message: str, *, formatted: bool = False) -> Any:
        """The translated format string of ``message`` in the render's locale (Markup
        when autoescaping), or with ``formatted`` the message without arguments (``%%``
        undone), looked up once per (locale, message, autoescape, formatted)."""
        autoescape = bool(ctx.eval_ctx.autoescape)
        key = (self.locale_of(ctx), message, autoescape, formatted)
        found = self._templates.get(key)
        if found is None:
            translated = self.translations(key[0]).gettext(message)
            found = self._as_text(ctx, translated, message)
            found = Markup(found) if autoescape else found
            found = found % _NO_VARIABLES if formatted else found
            if len(self._templates) < MAX_CACHED_MESSAGES:  # a message from profile data
                self._templates[key] = found
        return found

    def _as_text(self, ctx: Context, translated: str, original: str) -> str:
        """A catalog's string escaped in HTML (the template's own text stays as written)."""
        if translated == original or self.trusted or not ctx.eval_ctx.autoescape:
            return translated
        return escape(translated)

    def filters(self, *, legacy: bool) -> dict[str, Callable[..., Any]]:
        """``number``, ``percent``, ``timedelta``; and ``money`` and ``date`` unless
        ``legacy`` (no ``i18n:``: the English-only filters of renderer/env.py stay)."""
        found: dict[str, Callable[..., Any]] = {
            "number": self._number,
            "percent": self._percent,
            "timedelta": self._timedelta,
        }
        if not legacy:
            found.update(money=self._money, date=self._date)
        return found

    @functools.cached_property
    def _number(self) -> Callable[..., Any]:
        @pass_context
        def number(ctx: Context, value: Any, format: str | None = None) -> str:
            """``{{ n | number }}``: ``1,234.5`` as the recipient's locale writes it."""
            if _missing(value):
                return ""
            return _cached(format_decimal, value, format, self.locale_of(ctx))

        return number

    @functools.cached_property
    def _percent(self) -> Callable[..., Any]:
        @pass_context
        def percent(ctx: Context, value: Any, format: str | None = None) -> str:
            """``{{ 0.25 | percent }}``: ``25%`` (``25 %`` in French)."""
            if _missing(value):
                return ""
            return _cached(format_percent, value, format, self.locale_of(ctx))

        return percent

    @functools.cached_property
    def _money(self) -> Callable[..., Any]:
        @pass_context
        def money(ctx: Context, value: Any, currency: str | None = None) -> str:
            """``{{ total | money('EUR') }}``: ``1.234,50 €`` in German."""
            if _missing(value):
                return ""
            key = (type(value), value, currency or self.currency, self.locale_of(ctx))
            if type(value) not in (int, float):  # (NaN is missing: never a key)
                return format_currency(_number_value(value), key[2], locale=key[3])
            found = _MONEY.get(key)
            if found is None:
                if len(_MONEY) >= _CACHE_SIZE:
                    _MONEY.clear()
                found = _MONEY[key] = format_currency(_number_value(value), key[2], locale=key[3])
            return found

        return money

    @functools.cached_property
    def _date(self) -> Callable[..., Any]:
        @pass_context
        def date_filter(ctx: Context, value: Any, format: str = "medium") -> str:
            """``{{ d | date }}``, ``date('long')``, a CLDR pattern (``'d MMM'``) or a
            strftime one (with ``%``)."""
            if not isinstance(value, datetime | date):
                return "" if _missing(value) else str(value)
            if "%" in format:
                return value.strftime(format)
            locale = self.locale_of(ctx)
            if isinstance(value, datetime) and format not in DATE_STYLES:
                if not _date_only(format) or value.utcoffset() not in (None, _ZERO):
                    return format_datetime(value, format, locale=locale)
                value = value.date()  # the same text; dates repeat, moments do not
            return _cached_date(value, format, locale)

        return date_filter

    @functools.cached_property
    def _timedelta(self) -> Callable[..., Any]:
        @pass_context
        def timedelta_filter(ctx: Context, value: Any, granularity: Granularity = "second") -> str:
            """``{{ expires_at | timedelta }}``: ``in 3 days`` from the build's ``as_of``
            (never the clock); a timedelta or seconds print as a duration."""
            if _missing(value):
                return ""
            delta = _delta(value, ctx.get("as_of"))
            direction = isinstance(value, datetime | date)
            return format_timedelta(
                delta,
                granularity=granularity,
                add_direction=direction,
                locale=self.locale_of(ctx),
            )

        return timedelta_filter


def _delta(value: Any, as_of: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float | Decimal):
        return timedelta(seconds=float(value))
    if not isinstance(as_of, datetime):
        raise ValueError("timedelta of a date needs as_of")
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment - (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value - as_of.date()
    raise TypeError("timedelta needs a date, a datetime, a timedelta or seconds")


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return True
    return isinstance(value, str) and not value.strip()


def _number_value(value: Any) -> Any:
    """Exact decimals for floats as written (``2.675`` rounds to ``2.68``, as ``money``)."""
    if type(value) is float:
        return Decimal(str(value))
    if isinstance(value, str):
        return Decimal(value.strip())
    return value


# Prices repeat across recipients: Babel formats each (value, currency, locale) once.
# Keyed by the value's type too (1 and 1.0 are equal keys but may print differently).
_MONEY: dict[tuple[type, Any, str, str], str] = {}
_CACHE_SIZE = 65_536


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_number(function: Callable[..., str], value: Any, format: Any, locale: str) -> str:
    return function(value, format, locale=locale)


def _cached(function: Callable[..., str], value: Any, format: str | None, locale: str) -> str:
    return _cached_number(function, _number_value(value), format, locale)


_NUMBERS = frozenset({int, float, bool, Decimal})


def _format(template: Any, variables: dict[str, Any]) -> Any:
    """``template % variables`` as ``Markup.__mod__`` does it (values escaped into a
    Markup template, numbers kept for ``%d``), without its per-value helper objects."""
    if type(template) is not Markup:
        return template % variables
    safe = {k: v if type(v) in _NUMBERS else escape(v) for k, v in variables.items()}
    return Markup(str.__mod__(template, safe))


_ZERO = timedelta(0)
# CLDR pattern letters of the date alone (no time of day, no zone), outside quotes
_DATE_FIELDS = frozenset("GyYuUrQqMLlwWdDFgEec")
_QUOTED_RE = re.compile(r"'[^']*'")


@functools.lru_cache(maxsize=256)
def _date_only(pattern: str) -> bool:
    """Whether a CLDR pattern prints the date alone (``'MMMM y'``, not ``'HH:mm'``)."""
    letters = {c for c in _QUOTED_RE.sub("", pattern) if c.isalpha()}
    return letters <= _DATE_FIELDS


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_date(value: date, format: str, locale: str) -> str:
    """A date in ``locale`` (Babel), once per (date, format, locale): dates repeat."""
    return format_date(value, format, locale=locale)


def iter_locales(catalogs: Path) -> Iterator[str]:
    """The locales that have a catalog folder under ``catalogs``, sorted."""
    if catalogs.is_dir():
        for path in sorted(catalogs.iterdir()):
            if (path / "LC_MESSAGES").is_dir():
                yield path.name

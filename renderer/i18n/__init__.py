"""Localized content: recipient locales, Babel-backed filters, gettext catalogs
(:mod:`.locale`) and the catalog tooling behind ``mailsmith i18n`` (:mod:`.tools`).

Babel is imported only in this package.
"""

from renderer.i18n.locale import LOCALE_NAMES as LOCALE_NAMES
from renderer.i18n.locale import Localizer as Localizer
from renderer.i18n.locale import RecipientLocale as RecipientLocale
from renderer.i18n.locale import fallback_chain as fallback_chain
from renderer.i18n.locale import parse_locale as parse_locale

__all__ = ["LOCALE_NAMES", "Localizer", "RecipientLocale", "fallback_chain", "parse_locale"]

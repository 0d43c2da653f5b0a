"""The Jinja environment every template runs in: sandboxed, autoescaped, strict.

Profile values are data, never code: templates run in Jinja's
``SandboxedEnvironment`` with ``autoescape=True`` set explicitly (Jinja's
``select_autoescape`` does not cover ``.mjml``). A field that is missing for a
recipient is *undefined*: testing it (``{% if first_name %}``) is false,
looping over it yields nothing, printing it raises unless the ``fallback``
filter supplies a value.

What a render or a compile raises is translated into mailsmith's errors in one
place, at the end of this module (:func:`render_error`, :func:`syntax_error`);
the callers say where the failing token stands in the designer's file.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from types import BuiltinMethodType
from typing import Any, Literal, NoReturn

from jinja2 import Template, Undefined, pass_context
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace, internalcode
from markupsafe import Markup, escape

from renderer.codegen import GuardedCodeGenerator
from renderer.i18n import Localizer
from renderer.limits import RenderGuard, RenderLimitError
from renderer.tracking import TRACKING_FILTERS
from renderer.urls import FAST_SAFE, UrlKind, escaped_parts, is_safe_url, safe_value
from segments.errors import MailsmithError, RecipientError, TemplateError

MissingPolicy = Literal["reject", "blank", "error"]


class NamedUndefinedError(UndefinedError):
    """Jinja's undefined error, carrying the undefined ``name`` (a field or attribute).

    Raised by the environment's undefined values, so that the name is read from
    the error instead of from its message.
    """

    def __init__(self, message: str | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name

    def __reduce__(self) -> Any:
        return (type(self), (self.message, self.name))


class _NamedUndefined(Undefined):
    """An undefined value whose failures say which name was undefined."""

    __slots__ = ()

    @internalcode
    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_exception is not UndefinedError:
            # the sandbox's refusals come as undefined values raising SecurityError
            raise self._undefined_exception(self._undefined_message)
        name = self._undefined_name
        raise NamedUndefinedError(self._undefined_message, name if isinstance(name, str) else None)


class MissingFieldUndefined(_NamedUndefined):
    """Undefined that is falsy and iterable-as-empty but refuses to be printed."""

    __slots__ = ()

    def __str__(self) -> str:
        self._fail_with_undefined_error()
        return ""  # pragma: no cover - the call above always raises

    def __html__(self) -> str:
        return str(self)


class BlankUndefined(_NamedUndefined):
    """Undefined that prints as an empty string (``missing_token: blank``)."""

    __slots__ = ()

    def __html__(self) -> str:
        return ""


def is_missing(value: Any) -> bool:
    """True for undefined, None, NaN/NaT, and empty or whitespace-only strings.

    0 and False are values, not missing.
    """
    if value is None or isinstance(value, Undefined):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(value != value)  # NaT, pandas NA and numpy NaN
    except (TypeError, ValueError):
        return False


def fallback(value: Any, default: Any = "") -> Any:
    """``{{ first_name | fallback("there") }}``: the default when the value is missing."""
    return default if is_missing(value) else value


_MONEY_CACHE: dict[tuple[type, Any, str, int], str] = {}
_MONEY_CACHE_SIZE = 65_536


def money(value: Any, symbol: str = "$", places: int = 2) -> str:
    """Format a number as money: ``1234.5 | money`` gives ``$1,234.50``.

    Exact decimal rounding of the number as written (``2.675`` -> ``2.68``).
    Prices repeat across recipients, so results are cached by value.
    """
    if type(value) in (int, float) and value == value:  # NaN is missing: not cached
        key = (type(value), value, symbol, places)
        cached = _MONEY_CACHE.get(key)
        if cached is None:
            if len(_MONEY_CACHE) >= _MONEY_CACHE_SIZE:
                _MONEY_CACHE.clear()
            cached = _MONEY_CACHE[key] = _format_money(value, symbol, places)
        return cached
    return _format_money(value, symbol, places)


def _format_money(value: Any, symbol: str, places: int) -> str:
    if is_missing(value):
        return ""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    return f"{symbol}{number:,.{places}f}"


def format_date(value: Any, fmt: str = "%B %-d, %Y") -> str:
    """Format a date or datetime (``{{ signed_up_at | date('%d %b') }}``)."""
    if isinstance(value, datetime | date):
        return value.strftime(fmt)
    return "" if is_missing(value) else str(value)


@pass_context
def in_segment(ctx: Context, name: str) -> bool:
    """True when the recipient belongs to segment ``name``."""
    segments = ctx.get("segments")
    return bool(segments) and name in segments


@pass_context
def variant(ctx: Context, key: str) -> str | None:
    """The recipient's variant of experiment ``key`` (None when not in it)."""
    variants = ctx.get("variants") or {}
    result = variants.get(key)
    return None if result is None else str(result)


@pass_context
def has_fields(ctx: Context, *names: str) -> bool:
    """True when every named field has a value for the recipient."""
    return all(not is_missing(ctx.get(name)) for name in names)


class UnsafeUrlError(Exception):
    """A URL attribute's value has a scheme outside the allow-list (``render:
    {unsafe_urls: reject}``); ``kind`` is ``href`` or ``src``."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unsafe URL scheme in a {kind} attribute")
        self.kind = kind

    def __reduce__(self) -> Any:
        return (type(self), (self.kind,))


class MailsmithEnvironment(SandboxedEnvironment):
    """The sandbox, with a fast path for the commonest lookup: a key of a plain dict.

    ``{{ item.name }}`` on profile data is item access, which the sandbox allows
    anyway; only attribute access needs its checks, so dict keys are served first.
    Jinja's own loop object has only safe public attributes.

    Templates compile with :class:`~renderer.codegen.GuardedCodeGenerator`: their
    loops, calls and growing operators tick :attr:`guard` (render limits), and the
    expressions that start a URL attribute go through :meth:`url`.
    """

    code_generator_class = GuardedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args: Any, guard: RenderGuard | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard or RenderGuard()
        self.own_calls: frozenset[Any] = frozenset()  # pass_context callables called directly

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """The operators that can build a large value, within the render's budget."""
        return self.guard.binop(operator, left, right)

    def url(self, value: Any, kind: UrlKind, after: str) -> Markup:
        """The expression that starts a URL attribute's value, escaped, if the URL is
        safe; else the safe value and a warning, or :class:`UnsafeUrlError` (the
        campaign's ``render.unsafe_urls``)."""
        if type(value) is str and value.startswith(FAST_SAFE):  # most URLs
            return escape(value)
        return self.url_parts((value,), kind, after)

    def url_parts(self, parts: tuple[Any, ...], kind: UrlKind, after: str) -> Markup:
        """:meth:`url` for several expressions in a row (``{{ a }}{{ b }}``)."""
        value = escaped_parts(parts)
        if value.startswith(FAST_SAFE) or is_safe_url(value + after, kind):
            return value
        if self.guard.unsafe_urls == "reject":
            raise UnsafeUrlError(kind)
        self.guard.warnings.append(f"unsafe URL in a {kind} attribute replaced")
        return safe_value(kind)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        if type(obj) is Namespace and not attribute.startswith("_"):
            # a namespace holds only template data; read its dict, as Namespace does
            values = object.__getattribute__(obj, "_Namespace__attrs")
            if attribute in values:
                return values[attribute]
            return self.undefined(obj=obj, name=attribute)
        if type(obj) is LoopContext and not attribute.startswith("_"):
            return getattr(obj, attribute)  # loop.index and friends: all public, all safe
        return super().getattr(obj, attribute)

    def call(
        __self,  # noqa: N805 (Jinja's signature: the prefixes keep kwargs free)
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Calls from templates; mailsmith's own globals skip the generic safety checks.

        ``namespace()`` and the ``pass_context`` functions defined here are known to
        be safe, and they run for every recipient; anything else goes through the
        sandbox. Inside loops Jinja passes ``_loop_vars``: a context function then
        takes the generic path (it needs the derived context). Every call ticks the
        render's guard (render limits); what the generic path returns is size-checked.
        """
        guard = __self.guard
        guard.countdown -= 1
        if guard.countdown <= 0:
            guard.check_clock()
        if __obj in __self.own_calls:  # the localizer's gettext, ngettext (renderer/i18n)
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
            return guard.checked_call(__obj(__context, *args, **kwargs))
        if __obj is Namespace:
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
            return Namespace(*args, **kwargs)
        if (__obj is variant or __obj is in_segment or __obj is has_fields) and not kwargs:
            return __obj(__context, *args)
        if type(__obj) is BuiltinMethodType and type(__obj.__self__) in _PLAIN_VALUE_TYPES:
            # a date's method (signed_up_at.strftime(...)): what the sandbox's getattr
            # let through is safe to call; Jinja's Context.call would only drop these
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
            return guard.checked_call(__obj(*args, **kwargs))
        if args and isinstance(getattr(__obj, "__self__", None), str):  # 'x'.ljust(n)
            guard.check_widths(args)
        return guard.checked_call(super().call(__context, __obj, *args, **kwargs))


_PLAIN_VALUE_TYPES = frozenset({datetime, date})  # methods called without the generic path


def make_environment(
    missing: MissingPolicy = "reject",
    *,
    text: bool = False,
    guard: RenderGuard | None = None,
    localizer: Localizer | None = None,
) -> MailsmithEnvironment:
    """A sandboxed environment with mailsmith's filters and globals.

    ``text=True`` gives the environment for plain-text parts and subjects (no
    HTML escaping); everything else is identical. ``guard``: the render limits
    and warnings (a runtime's HTML and text environments share one). ``localizer``
    (a campaign's ``i18n:``): ``money`` and ``date`` in the recipient's locale, and
    ``{% trans %}``; without it they are English-only, as they always were.
    """
    undefined = BlankUndefined if missing == "blank" else MissingFieldUndefined
    env = MailsmithEnvironment(
        autoescape=not text,
        undefined=undefined,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,
        guard=guard,
    )
    env.filters.update(fallback=fallback, money=money, date=format_date)
    env.filters.update((localizer or _english()).filters(legacy=localizer is None))
    if localizer is not None:
        env.add_extension("jinja2.ext.i18n")
        env.newstyle_gettext = True  # type: ignore[attr-defined]
        callables = localizer.gettext_callables()  # newstyle already: installed as they are
        env.globals.update(callables, _=callables["gettext"])
        env.own_calls = frozenset(callables.values())
    env.filters.update(TRACKING_FILTERS)  # (renderer/compile/links.py writes their calls)
    for name in _PADDING_FILTERS:
        env.filters[name] = _width_checked(env.guard, env.filters[name])
    env.globals.update(in_segment=in_segment, variant=variant, has_fields=has_fields)
    return env


@functools.cache
def _english() -> Localizer:
    """The locale of ``number``, ``percent`` and ``timedelta`` without ``i18n:``."""
    return Localizer()


_PADDING_FILTERS = ("center", "indent", "format")  # a number argument sets the output size


def _width_checked(guard: RenderGuard, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a filter) refusing widths over the render's size budget."""

    @functools.wraps(function)
    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        guard.check_widths(args)
        guard.check_widths(kwargs.values())
        return function(value, *args, **kwargs)

    return checked


def with_globals(env: SandboxedEnvironment, context: Mapping[str, Any]) -> dict[str, Any]:
    """``context`` ready for :func:`render_shared`: itself when it already holds the
    environment's globals (:meth:`CampaignRuntime.context` builds it so), else a copy
    with them added underneath (context values win, as in ``Template.render``)."""
    if isinstance(context, dict) and all(
        context.get(name) is value for name, value in env.globals.items()
    ):
        return context
    return {**env.globals, **context}


def render_shared(template: Template, context: dict[str, Any]) -> str:
    """``template.render(context)`` without copying ``context`` into a new dict.

    ``Template.render`` merges the globals and the context into a fresh dict on
    every call; a recipient's email takes three renders (headers, HTML, text),
    so the context is built once with the globals in it (see :func:`with_globals`)
    and shared. Template-level ``{% set %}`` writes to the render's own Context,
    never to ``context``. Errors come out as from ``Template.render``.
    """
    try:
        return "".join(template.root_render_func(template.new_context(context, shared=True)))
    except Exception:
        return template.environment.handle_exception()


def syntax_error(
    exc: TemplateSyntaxError, file: str | None, line: int | None, label: str = ""
) -> TemplateError:
    """Jinja's syntax error as mailsmith's, at the designer's ``file`` and ``line``.

    ``label`` names the campaign key the template came from (``subject``), if any.
    """
    prefix = f"{label}: " if label else ""
    return TemplateError(f"{prefix}template syntax error: {exc.message}", file=file, line=line)


# What a render can raise for one recipient's data: rejected, the build goes on
# (SecurityError is the template's fault: it stops the build). A macro calling
# itself for ever, or an allocation too large, is a render limit like time and size.
RENDER_ERRORS = (
    UndefinedError,
    SecurityError,
    RenderLimitError,
    UnsafeUrlError,
    RecursionError,
    MemoryError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    AttributeError,
)


def render_error(
    exc: Exception, file: str | None, line: int | None, label: str = ""
) -> MailsmithError:
    """What a Jinja render raised (one of :data:`RENDER_ERRORS`) as mailsmith's error.

    The one place render failures are translated (as Jinja's ``handle_exception``
    is for its own): ``file`` and ``line`` are the designer's position of the
    failing token, ``label`` the campaign key the template came from, if any.
    A missing field or a type error rejects the recipient (:class:`RecipientError`,
    its message is the detail in errors.jsonl); unsafe code is a
    :class:`TemplateError`. Messages name the field, never a value.
    """
    prefix = f"{label}: " if label else ""
    where = (f"{file}:{line}: " if file else "") + prefix
    if isinstance(exc, UndefinedError):
        name = exc.name if isinstance(exc, NamedUndefinedError) else None
        return RecipientError(
            f"{where}'{name}' is undefined",
            reason="missing_field",
            field=name,
            file=file,
            line=line,
        )
    if isinstance(exc, SecurityError):
        return TemplateError(
            f"{prefix}unsafe template code refused by the sandbox: {exc}", file=file, line=line
        )
    if isinstance(exc, RenderLimitError | RecursionError | MemoryError):
        detail = str(exc) if isinstance(exc, RenderLimitError) else "render limit exceeded: "
        if not isinstance(exc, RenderLimitError):
            detail += "recursion too deep" if isinstance(exc, RecursionError) else "out of memory"
        return RecipientError(f"{where}{detail}", reason="render_limit", file=file, line=line)
    if isinstance(exc, UnsafeUrlError):
        return RecipientError(f"{where}{exc}", reason="unsafe_url", file=file, line=line)
    return RecipientError(
        f"{where}{type(exc).__name__} while rendering", reason="render_error", file=file, line=line
    )

"""The mailsmith exception tree: every error mailsmith raises on purpose.

    MailsmithError                 root; ``exit_code`` is what the CLI exits with (1)
    ├── ConfigError                campaign file or CLI option: key path, expected value (2)
    ├── SegmentRuleError           segments file: line, segment, rule (2)
    ├── ProfileDataError           profile source as a whole: file, row, field (3)
    ├── TemplateError              template/block syntax, unsupported construct, unsafe access (4)
    │   ├── UndefinedFieldError    a token's field is missing for a recipient (policy: error)
    │   └── MjmlError              the MJML compiler or the CSS inliner refused the template
    ├── OutputError                the output folder cannot be written safely (5)
    ├── AudienceWarningError       warnings (small segment, drift) made errors by --strict (7)
    ├── CheckFailedError           ``check`` found errors (or warnings, with --strict) (8)
    └── RecipientError             one recipient cannot be rendered: rejected with ``reason``,
                                   never fatal to a build (it becomes a line of errors.jsonl)

The tree lives in ``segments`` because that is the bottom layer: ``renderer``
and ``cli`` import it, and it imports nothing of theirs.

Location lives in typed attributes (``file``, ``line``, ``field``, ``segment``,
``row``, ``recipient_id``, ``variant``, ...) and ``__str__`` formats them as
``file:line: message (segment ..., row ...)``. Positions are in the designer's
own file, never in an assembled or compiled intermediate. Messages name fields,
never profile values: profile data is personal data. Every error pickles, so it
can cross a process boundary.
"""

from __future__ import annotations

from typing import Any

# The context attributes, in the order ``__str__`` shows them after the message.
_DETAILS = ("segment", "group", "cluster", "variant", "row", "rows", "recipient_id")


class MailsmithError(Exception):
    """Root of every error mailsmith raises on purpose."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        segment: str | None = None,
        group: str | None = None,
        cluster: str | None = None,
        variant: str | None = None,
        row: int | None = None,
        rows: Any = None,
        recipient_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.segment = segment
        self.group = group
        self.cluster = cluster
        self.variant = variant
        self.row = row
        self.rows = rows  # rows concerned, when there are several (a count or row numbers)
        self.recipient_id = recipient_id
        self.hint = hint

    def location(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or ""

    def __str__(self) -> str:
        loc = self.location()
        text = f"{loc}: {self.message}" if loc else self.message
        details = [
            f"{name.replace('_', ' ')} {value}"
            for name in _DETAILS
            if (value := getattr(self, name)) is not None
        ]
        if details:
            text += f" ({', '.join(details)})"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def context(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this error (its location and hint)."""
        names = ("file", "line", "field", *_DETAILS, "hint")
        return {name: getattr(self, name) for name in names}

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.message, self.context()))


def _rebuild(cls: type[MailsmithError], message: str, kwargs: dict[str, Any]) -> MailsmithError:
    return cls(message, **kwargs)


class ConfigError(MailsmithError):
    """The campaign file (or a CLI option standing in for it) is invalid."""

    exit_code = 2


class SegmentRuleError(MailsmithError):
    """A segment rule is malformed: unknown field, operator, segment, or a cycle."""

    exit_code = 2


class ProfileDataError(MailsmithError):
    """The profile source cannot be read as a whole (a bad row is rejected instead)."""

    exit_code = 3


class TemplateError(MailsmithError):
    """A template or block cannot be loaded, assembled, compiled or rendered."""

    exit_code = 4


class UndefinedFieldError(TemplateError):
    """A token printed a field that the recipient does not have (``missing_token: error``)."""


class MjmlError(TemplateError):
    """MJML compilation or CSS inlining failed."""


class OutputError(MailsmithError):
    """Writing the build output failed or would clobber something that is not ours."""

    exit_code = 5


class AudienceWarningError(MailsmithError):
    """Audience warnings (a segment below its minimum size, a drifted feature) under --strict."""

    exit_code = 7


class CheckFailedError(MailsmithError):
    """``mailsmith check`` found errors (warnings too with ``--strict``); ``build``
    refuses to start on the errors of its static part."""

    exit_code = 8


class RecipientError(MailsmithError):
    """One recipient cannot be rendered: rejected with ``reason``, the build goes on.

    ``message`` is the detail written to errors.jsonl (it names the template, line
    and field, never the value).
    """

    def __init__(self, message: str, *, reason: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.reason = reason

    @property
    def detail(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.message, {"reason": self.reason, **self.context()}))

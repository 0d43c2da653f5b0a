"""The mailsmith exception tree.

    MailsmithError                 root; ``exit_code`` is what the CLI exits with
    ├── ConfigError                campaign file: key path, expected value
    ├── ProfileDataError           profile source: file, row, field
    ├── SegmentRuleError           segments file: line, segment, rule
    ├── AudienceWarningError       warnings (small segment, drift) made errors by --strict
    └── (renderer.errors)          TemplateError, UndefinedFieldError, MjmlError, OutputError

Location lives in attributes and ``__str__`` formats them as
``file:line: message (segment ..., field ...)``. Messages name fields, never
profile values: profile data is personal data. Every error pickles, so it can
cross a process boundary.
"""

from __future__ import annotations

from typing import Any


class MailsmithError(Exception):
    """Root of every error mailsmith raises on purpose."""

    exit_code = 1
    _attrs: tuple[str, ...] = ("file", "line", "field")

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.hint = hint
        self.extra = extra

    def location(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or ""

    def __str__(self) -> str:
        loc = self.location()
        text = f"{loc}: {self.message}" if loc else self.message
        details = [f"{k} {v}" for k, v in self.extra.items() if v is not None]
        if details:
            text += f" ({', '.join(details)})"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __reduce__(self) -> Any:
        kwargs = {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "hint": self.hint,
            **self.extra,
        }
        return (_rebuild, (type(self), self.message, kwargs))


def _rebuild(cls: type[MailsmithError], message: str, kwargs: dict[str, Any]) -> MailsmithError:
    return cls(message, **kwargs)


class ConfigError(MailsmithError):
    """The campaign file (or a CLI option standing in for it) is invalid."""

    exit_code = 2


class ProfileDataError(MailsmithError):
    """The profile source cannot be read as a whole (a bad row is rejected instead)."""

    exit_code = 3


class SegmentRuleError(MailsmithError):
    """A segment rule is malformed: unknown field, operator, segment, or a cycle."""

    exit_code = 2


class AudienceWarningError(MailsmithError):
    """Audience warnings (a segment below its minimum size, a drifted feature) under --strict."""

    exit_code = 7

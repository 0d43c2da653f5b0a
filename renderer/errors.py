"""Errors of the content side, under :class:`segments.errors.MailsmithError`.

    MailsmithError
    ├── TemplateError          template/block syntax, unsupported construct, unsafe access
    ├── UndefinedFieldError    a token's field is missing for a recipient (policy: error)
    ├── MjmlError              the MJML compiler refused the assembled template
    └── OutputError            the output folder cannot be written safely

Positions are reported in the designer's own file (template or block), never
in an assembled or compiled intermediate.
"""

from __future__ import annotations

from segments.errors import MailsmithError


class TemplateError(MailsmithError):
    """A template or block cannot be loaded, assembled or compiled."""

    exit_code = 4


class UndefinedFieldError(TemplateError):
    """A token printed a field that the recipient does not have."""


class MjmlError(TemplateError):
    """MJML compilation failed."""


class OutputError(MailsmithError):
    """Writing the build output failed or would clobber something that is not ours."""

    exit_code = 5

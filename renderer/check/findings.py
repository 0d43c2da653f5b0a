"""One finding of ``mailsmith check``: a rule, where it is written, and how to fix it.

Every rule (names, data audit, rendered checks, caniemail) reports ``Finding`` objects,
located in the designer's own file (template, block, segments or campaign file, never a
compiled intermediate) so an editor or a CI annotation can jump to the line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a finding is: errors fail ``check`` (and stop ``build``), warnings fail
    ``check --strict``, infos never fail."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem: ``rule`` is a stable id (``unknown-name``, ``css-unsupported``...)
    that ``check: {ignore: [...]}`` and ``{# mailsmith: ignore[rule] #}`` switch off."""

    file: str
    line: int | None
    rule: str
    severity: Severity
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``--format json``)."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return data

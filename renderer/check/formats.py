"""``check``'s findings as text for machines: JSON, and GitHub Actions annotations.

(The table for people is drawn by the CLI, from :func:`by_file`.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from renderer.check.findings import Finding, Severity

FORMATS = ("table", "json", "github")
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def by_file(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    """Findings grouped by file, in order."""
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(display_path(finding.file), []).append(finding)
    return grouped


def display_path(file: str) -> str:
    """``file`` relative to the working directory when it is inside it (as a repository
    checkout names it, which GitHub's annotations need), else as it is."""
    path = Path(file)
    if not path.is_absolute():
        return file
    try:
        return os.path.relpath(path, Path.cwd()) if path.is_relative_to(Path.cwd()) else file
    except ValueError:  # another drive (Windows)
        return file


def format_findings(findings: Iterable[Finding], fmt: str) -> str:
    """``json``: a list of objects (rule, severity, file, line, message, hint);
    ``github``: one workflow command per finding (``::error file=F,line=L,title=R::M``)."""
    if fmt == "json":
        rows = [{**f.to_dict(), "file": display_path(f.file)} for f in findings]
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    if fmt == "github":
        return "".join(_annotation(f) + "\n" for f in findings)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def _annotation(finding: Finding) -> str:
    properties = [f"file={_property(display_path(finding.file))}"]
    if finding.line:
        properties.append(f"line={finding.line}")
    properties.append(f"title={_property(finding.rule)}")
    message = finding.message + (f" (hint: {finding.hint})" if finding.hint else "")
    return f"::{_LEVELS[finding.severity]} {','.join(properties)}::{_data(message)}"


def _data(text: str) -> str:
    """Escaped as GitHub's workflow commands read a message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """Escaped as GitHub's workflow commands read a property value."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")

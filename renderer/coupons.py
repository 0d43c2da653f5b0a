"""Coupon codes: one unused code of a pool for each recipient of a segment.

``coupons: {pool: coupons.csv, segment: lapsed}`` in the campaign (optional keys:
``column``, the pool's column of codes, ``code``; ``field``, the name templates read,
``coupon``; ``used``, earlier manifests whose codes are not given again).

The design, and why:

- **Who gets one.** Every member of the segment who gets an email: in the audience
  (not ``--exclude``\\ d, sampled), not held out by an experiment, not rejected when
  validated. A recipient rejected at *render* (a render error) keeps the code it was
  given: whether a render fails is only known after it ran, and codes fixed before any
  render keep every chunk's assignment independent of every other chunk's. Such a code
  appears in no manifest line, so it is free for a later campaign.
- **Which one.** Members sorted by input row take the pool's unused codes in file
  order: the first member the first code. It depends on the inputs only, not on the
  chunks, the number of workers or a resumed build (which re-derives the same
  assignment and skips the chunks it had written): no code goes to two recipients.
- **When.** Before the first render, the build's parent process segments every chunk
  (:func:`segments.batch.segment_members`, without the records a render needs) and
  counts the members; a pool with fewer unused codes stops the build there
  (:class:`ConfigError`, exit 2, at the campaign's ``coupons:`` line). The parent then
  hands every worker the row-to-code map with the build's job.
- **Where it shows.** The recipient's record gets ``field`` (``{{ coupon }}``), and the
  manifest line a ``coupon`` key.

The pool is a CSV file with a header row; a code may appear once (a second one is an
error at its line), empty cells are skipped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from segments.batch import SegmentPlan, segment_members
from segments.errors import ConfigError
from segments.profiles.spool import ValidatedChunk
from segments.yamlsrc import line_at, load_yaml

MANIFEST_KEY = "coupon"  # the manifest's key, whatever ``field`` the templates read
KEY = MANIFEST_KEY.encode()


class CouponSpec(BaseModel):
    """``coupons:``: a pool of single-use codes for a segment's recipients."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pool: str = Field(description="CSV file of codes (a header row), relative to the campaign.")
    segment: str = Field(description="The segment (or group column) whose recipients get one.")
    column: str = Field(default="code", description="The pool's column of codes.")
    field: str = Field(
        default="coupon", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="The template name."
    )
    used: tuple[str, ...] = Field(
        default=(), description="Earlier manifests: their recipients' codes are not given again."
    )

    @field_validator("used", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


@dataclass(frozen=True)
class CouponCodes:
    """The codes a build gives: by input row; ``field``, the name templates read."""

    by_row: Mapping[int, str]
    field: str = "coupon"

    def give(self, rows: list[int], records: list[dict[str, Any]]) -> None:
        """Put each member's code in its record (the render's context)."""
        for row, record in zip(rows, records, strict=True):
            code = self.by_row.get(row)
            if code is not None:
                record[self.field] = code

    def line(self, line: bytes, row: int) -> bytes:
        """A manifest line with the recipient's code added as its last key."""
        code = self.by_row.get(row)
        if code is None:
            return line
        value = json.dumps(code, ensure_ascii=False).encode("utf-8")
        return line[: line.rindex(b"}")] + b',"' + KEY + b'":' + value + b"}\n"


@dataclass(frozen=True)
class CouponPool:
    """A campaign's unused codes, in the pool file's order, and where they are set."""

    spec: CouponSpec
    codes: tuple[str, ...]
    total: int  # codes in the pool file, used ones included
    file: str  # the campaign file
    line: int | None  # its ``coupons:`` line

    def assign(self, plan: SegmentPlan, chunks: Iterable[ValidatedChunk]) -> CouponCodes:
        """Each member's code by input row; :class:`ConfigError` when too few are left."""
        if self.spec.segment not in plan.segments.names:
            raise ConfigError(
                f"coupons: no segment named {self.spec.segment!r}",
                file=self.file,
                line=self.line,
                field="coupons.segment",
                hint="choose one of " + ", ".join(plan.segments.names),
            )
        if self.spec.field in plan.schema.fields:  # the code would replace the profile's value
            raise ConfigError(
                f"coupons: field {self.spec.field!r} is a profile field",
                file=self.file,
                line=self.line,
                field="coupons.field",
                hint="name the template variable otherwise: coupons: {field: coupon}",
            )
        segment = self.spec.segment
        rows = sorted(r for chunk in chunks for r in segment_members(chunk, plan, segment))
        if len(rows) > len(self.codes):
            raise self._too_few(len(rows))
        return CouponCodes(dict(zip(rows, self.codes, strict=False)), self.spec.field)

    def _too_few(self, needed: int) -> ConfigError:
        used = self.total - len(self.codes)
        of = f" ({used} of its {self.total} already used)" if used else ""
        return ConfigError(
            f"coupons: the pool {self.spec.pool} has {len(self.codes)} unused codes{of}, "
            f"but {needed} recipients need one",
            file=self.file,
            line=self.line,
            field="coupons",
            segment=self.spec.segment,
            hint=f"add at least {needed - len(self.codes)} codes to {self.spec.pool}, "
            "or narrow the segment (or --sample, --limit)",
        )


def load_pool(spec: CouponSpec | None, base_dir: Path, campaign_file: str) -> CouponPool | None:
    """The campaign's pool (None without ``coupons:``), read before anything else."""
    if spec is None:
        return None
    path = base_dir / spec.pool
    codes = read_codes(path, spec.column)
    used = used_codes([base_dir / manifest for manifest in spec.used])
    line = (
        line_at(load_yaml(Path(campaign_file)), ["coupons"])
        if Path(campaign_file).is_file()
        else None
    )
    unused = tuple(code for code in codes if code not in used)
    return CouponPool(spec, unused, len(codes), campaign_file, line)


def read_codes(path: Path, column: str) -> list[str]:
    """The codes of a pool file in order; a repeated code is an error at its line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if column not in (reader.fieldnames or []):
                raise ConfigError(
                    f"the coupon pool has no column {column!r}",
                    file=str(path),
                    line=1,
                    field="coupons.column",
                    hint="name the column of codes with coupons: {column: ...}",
                )
            first: dict[str, int] = {}
            for row in reader:
                code = (row.get(column) or "").strip()
                if not code:
                    continue
                if code in first:
                    raise ConfigError(
                        f"coupon code repeated (first at line {first[code]})",
                        file=str(path),
                        line=reader.line_num,
                        row=reader.line_num,
                        field=column,
                        hint="a code is single-use: remove the second one",
                    )
                first[code] = reader.line_num
    except OSError as exc:
        raise ConfigError(f"cannot read the coupon pool: {exc.strerror}", file=str(path)) from None
    return list(first)


def used_codes(manifests: Iterable[Path]) -> set[str]:
    """The codes earlier builds gave (the ``coupon`` of their manifest lines)."""
    used: set[str] = set()
    for path in manifests:
        try:
            with path.open(encoding="utf-8") as handle:
                for number, text in enumerate(handle, 1):
                    used.add(_manifest_code(text, str(path), number) or "")
        except OSError as exc:
            raise ConfigError(f"cannot read manifest: {exc.strerror}", file=str(path)) from None
    used.discard("")
    return used


def _manifest_code(text: str, file: str, line: int) -> str | None:
    try:
        entry = json.loads(text)
    except json.JSONDecodeError:
        entry = None
    if not isinstance(entry, dict):
        raise ConfigError("not a mailsmith manifest line", file=file, line=line)
    code = entry.get(MANIFEST_KEY)
    return str(code) if code is not None else None


def coupon_files(spec: CouponSpec | None, base_dir: Path) -> list[Path]:
    """The files a pool is read from (a resumed build checks they did not change)."""
    if spec is None:
        return []
    return [base_dir / spec.pool, *(base_dir / manifest for manifest in spec.used)]

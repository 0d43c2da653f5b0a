"""Validating typed profile rows: every input row is valid or rejected, with a reason.

Every input row ends up either in a valid chunk or as a :class:`Rejection` with
its row number, field and reason; nothing is dropped silently.

Rejection reasons, in the order they are checked (a row gets the first):
``malformed_row`` (a CSV line that does not parse), ``invalid_json``, then per field
``missing_required``, ``invalid_value``, ``invalid_text`` (a control character or a lone
surrogate, :mod:`segments.profiles.guards`), then ``invalid_email``, ``duplicate_id``,
``duplicate_email``, ``no_consent``, ``suppressed``. Ids are compared as
:func:`~segments.profiles.guards.normalize_id` spells them, addresses as
:func:`~segments.profiles.emails.normalize_email` does (a ``duplicate_email`` detail
names the row that has the address first, never the address), and so is the
suppression list. A row rejected for a
later reason (``no_consent``, ``suppressed``) still holds its id and address: a second
row with either is a duplicate, not a second chance to send.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from email_validator import EmailNotValidError, validate_email

from segments.errors import ConfigError, ProfileDataError
from segments.profiles.emails import (
    FirstRows,
    normalize_email,
    normalize_emails,
    repeated_addresses,
)
from segments.profiles.guards import (
    CONTROL_PATTERN,
    SUSPECT_JSON_PATTERN,
    has_bad_text,
    is_bad_text,
    normalize_id,
    normalize_ids,
)
from segments.profiles.read import RawChunk, Rejection, column_hint
from segments.profiles.schema import FieldDef, ProfileSchema, convert
from segments.profiles.textindex import SeenTexts, text_fingerprints


@dataclass(frozen=True)
class FirstSeen:
    """A chunk's rows whose ids the validator had not seen before (input row numbers),
    with the fingerprints of those ids (:func:`~segments.profiles.textindex.text_fingerprints`).

    A validator in a worker process sees one chunk only; the parent, which sees every
    chunk's :class:`FirstSeen` in input order, finds the duplicates across chunks
    (:mod:`segments.profiles.parallel`).
    """

    rows: np.ndarray
    first: np.ndarray
    second: np.ndarray


class ProfileValidator:
    """Types and validates raw chunks; remembers ids across chunks to catch duplicates.

    Duplicate detection keeps a fingerprint of every accepted id (16 bytes per
    recipient, :class:`segments.profiles.textindex.SeenTexts`) and of every address with
    its row (24 bytes, :class:`segments.profiles.emails.FirstRows`); everything else is
    per chunk. ``email_rules``: the provider rules of
    :func:`~segments.profiles.emails.normalize_email` (none by default).
    """

    def __init__(
        self,
        schema: ProfileSchema,
        *,
        file: str,
        consent_field: str | None = None,
        suppressed_emails: frozenset[str] = frozenset(),
        suppressed_ids: frozenset[str] = frozenset(),
        email_rules: tuple[str, ...] = (),
    ) -> None:
        self.schema = schema
        self.file = file
        self.consent_field = consent_field
        self.suppressed_emails = suppressed_emails
        self.suppressed_ids = suppressed_ids
        self._seen = SeenTexts()
        self.email_rules = email_rules
        self._emails = FirstRows()
        # the suppression list compared as addresses are (a listed A@Example.com
        # suppresses a@example.com, and with gmail_dots j.doe@ suppresses jdoe@)
        normalized = (normalize_email(e, email_rules) for e in suppressed_emails)
        self._suppressed = frozenset(e for e in normalized if e is not None)
        self._details: dict[Any, str] = {}  # this chunk's row-specific details
        self._checked_columns = False
        self.first_seen = FirstSeen(*(np.zeros(0, np.uint64) for _ in range(3)))  # last chunk's

    @property
    def addresses(self) -> FirstRows:
        """The addresses seen so far (fingerprints and rows; a fresh validator's: its chunk's)."""
        return self._emails

    def knows_any(self, seen: FirstSeen, addresses: FirstRows) -> bool:
        """Whether an id of ``seen`` or an address of ``addresses`` (another validator's,
        of one chunk) was seen by this one: only then does this validator judge that
        chunk differently from a fresh one."""
        if self._seen.contains_fingerprints(seen.first, seen.second).any():
            return True
        first, second, _ = addresses.entries()
        return bool((self._emails.find(first, second) >= 0).any())

    def remember(self, seen: FirstSeen, addresses: FirstRows) -> None:
        """Take in a chunk another validator read (none of it :meth:`knows_any`)."""
        self._seen.add_fingerprints(seen.first, seen.second)
        self._emails.add_fingerprints(*addresses.entries())

    def skip_column_check(self) -> None:
        """Do not check the file's columns (another validator did, on an earlier chunk)."""
        self._checked_columns = True

    def validate(self, chunk: RawChunk) -> tuple[pd.DataFrame, list[Rejection]]:
        """Return the typed valid rows and the rejections of this chunk."""
        frame = chunk.frame
        rejections = list(chunk.rejections)
        if not self._checked_columns and len(frame.columns):
            self._check_columns(frame)
        reason = pd.Series("", index=frame.index, dtype=object)
        where = pd.Series(None, index=frame.index, dtype=object)
        typed = pd.DataFrame(index=frame.index)
        self._details = {}
        for name, spec in self.schema.fields.items():
            column = (
                frame[name]
                if name in frame.columns
                else pd.Series(None, index=frame.index, dtype=object)
            )
            values, invalid = convert(column, spec.type)
            bad_text = _bad_text(column, values, spec.type)  # before trimming ids
            if name == self.schema.id_field and spec.type == "string":
                values = _normalized_ids(column, values)
            absent = (
                values.isna()
                if spec.type not in ("list", "dict")
                else values.map(lambda v: v is None).astype(bool)
            ) & ~invalid  # (an invalid value is not typed: it is not missing)
            if spec.required:
                _flag(reason, where, absent, "missing_required", name)
            elif spec.default is not None:
                values = _fill_default(values, absent, spec)
            _flag(reason, where, invalid, "invalid_value", name)
            _flag(reason, where, bad_text, "invalid_text", name)
            typed[name] = values
        self._check_rows(typed, reason, where)
        ids = typed[self.schema.id_field]
        for row in reason.index[reason != ""]:
            rejections.append(
                Rejection(
                    int(row),
                    _safe_id(ids.get(row)),
                    where[row],
                    reason[row],
                    self._details.get(row) or _detail(reason[row], where[row], self.schema),
                )
            )
        rejections.sort(key=lambda r: r.row)
        return typed[reason == ""], rejections

    def _check_columns(self, frame: pd.DataFrame) -> None:
        self._checked_columns = True
        for name, spec in self.schema.fields.items():
            if spec.required and name not in frame.columns:
                raise ProfileDataError(
                    f"required column {name!r} is not in the file",
                    file=self.file,
                    field=name,
                    hint=column_hint(
                        frame.columns, "add the column or make the field optional in the schema"
                    ),
                )

    def _check_rows(self, typed: pd.DataFrame, reason: pd.Series, where: pd.Series) -> None:
        email_field, id_field = self.schema.email_field, self.schema.id_field
        emails = typed[email_field]
        bad_email = pd.Series([not _valid_email(e) for e in emails], index=typed.index)
        _flag(reason, where, bad_email & emails.notna(), "invalid_email", email_field)
        self._flag_duplicates(typed[id_field], reason, where)
        self._flag_duplicate_emails(emails, reason, where)
        if self.consent_field:
            consent = (
                typed[self.consent_field]
                if self.consent_field in typed
                else pd.Series(pd.NA, index=typed.index)
            )
            _flag(
                reason, where, ~consent.fillna(False).astype(bool), "no_consent", self.consent_field
            )
        if self.suppressed_emails:
            addresses = normalize_emails(emails, self.email_rules)
            _flag(reason, where, addresses.isin(self._suppressed), "suppressed", email_field)
        if self.suppressed_ids:
            _flag(reason, where, typed[id_field].isin(self.suppressed_ids), "suppressed", id_field)

    def _flag_duplicates(self, ids: pd.Series, reason: pd.Series, where: pd.Series) -> None:
        """A row whose id (as text) was in an earlier row that was not rejected before it."""
        pending = np.flatnonzero((reason == "").to_numpy() & ids.notna().to_numpy())
        texts = pd.Series([str(value) for value in ids.to_numpy()[pending]], dtype=object)
        first, second = text_fingerprints(texts)
        within = texts.duplicated(keep="first").to_numpy()
        repeated = within | self._seen.contains_fingerprints(first, second)
        new = ~repeated
        self._seen.add_fingerprints(first[new], second[new])
        rows = ids.index.to_numpy()[pending[new]].astype(np.int64)
        self.first_seen = FirstSeen(rows, first[new], second[new])
        duplicate = np.zeros(len(ids), dtype=bool)
        duplicate[pending[repeated]] = True
        _flag(
            reason,
            where,
            pd.Series(duplicate, index=ids.index),
            "duplicate_id",
            self.schema.id_field,
        )

    def _flag_duplicate_emails(
        self, emails: pd.Series, reason: pd.Series, where: pd.Series
    ) -> None:
        """A row whose normalized address was in an earlier row not rejected before it."""
        pending = np.flatnonzero((reason == "").to_numpy() & emails.notna().to_numpy())
        if not len(pending):
            return
        addresses = normalize_emails(emails.iloc[pending], self.email_rules)
        rows = emails.index.to_numpy()[pending].astype(np.int64)
        repeated, first = repeated_addresses(addresses.reset_index(drop=True), rows, self._emails)
        if not repeated.any():
            return
        field = self.schema.email_field
        for row, earlier in zip(rows[repeated], first[repeated], strict=True):
            reason[row], where[row] = "duplicate_email", field
            self._details[row] = f"address in field '{field}' already used by row {earlier}"


def _flag(reason: pd.Series, where: pd.Series, mask: pd.Series, code: str, name: str) -> None:
    if not mask.to_numpy(dtype=bool, na_value=False).any():
        return  # (the usual case: no work per row)
    hit = mask.astype(bool) & (reason == "")
    reason[hit] = code
    where[hit] = name


def _normalized_ids(raw: pd.Series, values: pd.Series) -> pd.Series:
    """Ids as :func:`~segments.profiles.guards.normalize_id` spells them: vectorized on
    CSV text (whose typed values are ``raw``'s, as objects), one by one otherwise."""
    if isinstance(raw.dtype, pd.StringDtype):
        ids = normalize_ids(raw)
        return values if ids is raw else ids.astype(object).where(ids.notna(), None)
    return normalize_ids(values)


def _bad_text(raw: pd.Series, values: pd.Series, kind: str) -> pd.Series:
    """Where a text value, or text inside a list/dict, is bad by
    :func:`~segments.profiles.guards.is_bad_text`.

    Vectorized on CSV text; list/dict values are walked only where their raw JSON text
    could hold such a character, or one by one when they were not read from text.
    """
    none = pd.Series(False, index=raw.index)
    if kind == "string":
        if isinstance(raw.dtype, pd.StringDtype):
            hit = raw.str.contains(CONTROL_PATTERN, regex=True)
            return pd.Series(hit.to_numpy(dtype=bool, na_value=False), index=raw.index)
        return values.map(lambda v: isinstance(v, str) and is_bad_text(v)).astype(bool)
    if kind not in ("list", "dict"):
        return none
    if isinstance(raw.dtype, pd.StringDtype):
        suspect = raw.str.contains(SUSPECT_JSON_PATTERN, regex=True)
        candidates = pd.Series(suspect.to_numpy(dtype=bool, na_value=False), index=raw.index)
    else:
        candidates = values.notna()
    if not candidates.any():
        return none
    hit = values[candidates].map(has_bad_text).astype(bool)
    return none | hit.reindex(raw.index, fill_value=False)


def _fill_default(values: pd.Series, absent: pd.Series, spec: FieldDef) -> pd.Series:
    filled, _ = convert(pd.Series([spec.default], dtype=object), spec.type)
    return values.where(~absent, filled.iloc[0])


_PLAIN_EMAIL_RE = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?!(?:arpa|invalid|local|localhost|onion|test)$)[A-Za-z]{2,63}"
)


def _valid_email(value: Any) -> bool:
    """email-validator's syntax check, with a fast path for plain ASCII addresses.

    Addresses matching the strict plain pattern (and its length limits) are
    ones email-validator accepts; everything else goes to email-validator.
    """
    if not isinstance(value, str):
        return False
    if _PLAIN_EMAIL_RE.fullmatch(value) and len(value) <= 254 and value.index("@") <= 64:
        return True
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _safe_id(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


_DETAILS = {
    "missing_required": "required field '{field}' has no value",
    "invalid_value": "field '{field}' is not a valid {type}",
    "invalid_text": "field '{field}' holds a control character or a lone surrogate",
    "invalid_email": "field '{field}' is not a valid email address",
    "duplicate_id": "id already seen in an earlier row",
    "duplicate_email": "address in field '{field}' already used by an earlier row",
    "no_consent": "no marketing consent in field '{field}'",
    "suppressed": "on the suppression list",
}


def rejection_detail(reason: str, name: str | None, schema: ProfileSchema) -> str:
    """The detail text of a rejection for ``reason`` on field ``name``."""
    return _detail(reason, name, schema)


def _detail(reason: str, name: str | None, schema: ProfileSchema) -> str:
    spec = schema.fields.get(name or "")
    return _DETAILS[reason].format(field=name, type=spec.type if spec else "value")


def load_suppression(
    path: str | Path, column: str, *, delimiter: str = ",", encoding: str = "utf-8"
) -> frozenset[str]:
    """Emails (lower-cased) or ids from a suppression CSV with that column."""
    path = Path(path)
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, sep=delimiter, encoding=encoding
        )
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read suppression list: not {encoding} text ({exc.reason})",
            file=str(path),
            hint="set suppression.encoding in the campaign (e.g. cp1252), or save it as UTF-8",
        ) from None
    except (OSError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot read suppression list: {exc}", file=str(path)) from None
    if column not in frame.columns:
        raise ConfigError(
            f"suppression list has no {column!r} column",
            file=str(path),
            field=column,
            hint=column_hint(
                frame.columns, "set suppression.column: email or id", "suppression.delimiter"
            ),
        )
    values = frame[column].str.strip()
    values = values[values != ""]
    if column == "email":
        return frozenset(values.str.lower())
    return frozenset(normalize_id(v) for v in values) - {None}

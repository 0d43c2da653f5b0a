"""One address, one email: addresses as they are compared, and the first row of each.

Two rows whose addresses normalize to the same text are one mailbox; the second is
rejected as ``duplicate_email`` (:mod:`segments.profiles.validate`). Normalized:

- the whole address in Unicode NFC (a precomposed ``é`` and ``e`` + combining acute
  are one letter);
- the domain lower-cased and IDNA-encoded (UTS 46 mapping, as browsers and mail
  servers look it up): ``Bücher.Example`` and ``xn--bcher-kva.example`` are one domain;
- the local part lower-cased too. RFC 5321 lets a server treat ``A`` and ``a`` as
  different mailboxes, but no mainstream provider does, and ESPs (Mailchimp, Braze,
  Klaviyo, SendGrid) dedupe case-insensitively: sending twice to one person is the
  likelier mistake. (``lower``, not ``casefold``: ``ß`` stays ``ß``.)

Provider rules, off by default (``profiles: {email_rules: [gmail_dots, plus_tags]}``):

- ``gmail_dots``: at ``gmail.com`` and ``googlemail.com`` (one provider), dots in the
  local part are dropped (Gmail ignores them) and the domain is ``gmail.com``;
- ``plus_tags``: ``name+tag@`` is ``name@`` at any domain (sub-addressing, RFC 5233;
  most providers deliver it to ``name``).

:class:`FirstRows` remembers each normalized address with its row number in 24 bytes
(a 128-bit fingerprint and the row; see :class:`~segments.profiles.textindex.SeenTexts`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

import idna
import numpy as np
import pandas as pd

from segments.profiles.textindex import text_fingerprints

_GMAIL = frozenset({"gmail.com", "googlemail.com"})


def normalize_email(value: Any, rules: Iterable[str] = ()) -> str | None:
    """``value`` as addresses are compared (module docstring); None when it is not a
    text with an ``@`` (the validator has rejected it already)."""
    if not isinstance(value, str) or "@" not in value:
        return None
    text = value.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    local, _, domain = text.rpartition("@")
    local, domain = local.lower(), _domain(domain)
    if "plus_tags" in rules:
        local = local.split("+", 1)[0] or local  # (an address starting with + keeps it)
    if "gmail_dots" in rules and domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def _domain(domain: str) -> str:
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:  # (email-validator accepted it: compare it as written)
        return domain.lower()


def normalize_emails(values: pd.Series, rules: Iterable[str] = ()) -> pd.Series:
    """:func:`normalize_email` over a column (object dtype, None where missing); plain
    ASCII addresses without rules are lower-cased without a Python call each."""
    rules = tuple(rules)
    if isinstance(values.dtype, pd.StringDtype) and not rules:
        plain = values.str.isascii().to_numpy(dtype=bool, na_value=False)
        plain &= (values.str.strip().str.len() == values.str.len()).to_numpy(
            dtype=bool, na_value=False
        )
        out = values.str.lower().astype(object)
        out[values.isna().to_numpy()] = None
        todo = np.flatnonzero(values.notna().to_numpy() & ~plain)
        out.iloc[todo] = [normalize_email(v) for v in values.iloc[todo]]
        return out
    return pd.Series([normalize_email(v, rules) for v in values], index=values.index, dtype=object)


class FirstRows:
    """Texts seen so far, each with the row it was first seen in (24 bytes per text).

    Like :class:`~segments.profiles.textindex.SeenTexts`: sorted runs of 128-bit
    fingerprints, merged when of similar size, here with a row number beside each.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(first) for first, _, _ in self._runs)

    def first_rows(self, values: Any) -> np.ndarray:
        """For each value (text, never missing), the row it was added with, else -1."""
        return self.find(*text_fingerprints(values))

    def find(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """:meth:`first_rows` of texts given by their fingerprints."""
        found = np.full(len(first), -1, dtype=np.int64)
        for run_first, run_second, run_rows in self._runs:
            low = np.searchsorted(run_first, first, side="left")
            high = np.searchsorted(run_first, first, side="right")
            for i in np.flatnonzero(high > low):  # (rare: a repeated address)
                same = np.flatnonzero(run_second[low[i] : high[i]] == second[i])
                if len(same):
                    found[i] = run_rows[low[i] + same[0]]
        return found

    def add(self, values: Any, rows: np.ndarray) -> None:
        """Add texts that are new and distinct from each other, with their rows."""
        self.add_fingerprints(*text_fingerprints(values), np.asarray(rows, dtype=np.int64))

    def add_fingerprints(self, first: np.ndarray, second: np.ndarray, rows: np.ndarray) -> None:
        """:meth:`add` of texts given by their fingerprints."""
        if not len(first):
            return
        while self._runs and len(self._runs[-1][0]) <= 2 * len(first):
            run_first, run_second, run_rows = self._runs.pop()
            first = np.concatenate([run_first, first])
            second = np.concatenate([run_second, second])
            rows = np.concatenate([run_rows, rows])
        order = np.argsort(first, kind="stable")
        self._runs.append((first[order], second[order], rows[order]))

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every text kept, as fingerprints (two halves) and rows."""
        if not self._runs:
            empty = np.zeros(0, np.uint64)
            return empty, empty, np.zeros(0, np.int64)
        first, second, rows = zip(*self._runs, strict=True)
        return np.concatenate(first), np.concatenate(second), np.concatenate(rows)


def repeated_addresses(
    addresses: pd.Series, rows: np.ndarray, seen: FirstRows
) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``addresses`` (normalized, none missing; at ``rows``) were seen before,
    in ``seen`` or earlier in this list, and the row each was first seen in (-1 where
    new). The new ones are added to ``seen``."""
    earlier = seen.first_rows(addresses) if len(seen) else np.full(len(addresses), -1)
    codes, uniques = pd.factorize(addresses)
    _, first_at = np.unique(codes, return_index=True)
    in_chunk = rows[first_at[codes]]
    first = np.where(earlier >= 0, earlier, in_chunk)
    repeated = (earlier >= 0) | (np.arange(len(addresses)) != first_at[codes])
    seen.add(addresses[~repeated], rows[~repeated])
    return repeated, np.where(repeated, first, -1)


__all__ = ["FirstRows", "normalize_email", "normalize_emails", "repeated_addresses"]

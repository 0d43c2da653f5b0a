"""Reading profiles and events from a SQL database, in chunks, through SQLAlchemy.

A campaign names a database URL and either a ``query`` or a ``table``::

    profiles: {url: "sqlite:///crm.db", table: customers}
    events: {url: "postgresql://mail@db/crm?password=${CRM_PASSWORD}", query: "SELECT ..."}

The rows come in the order of the statement (a ``table`` is read ``ORDER BY`` its
``order_by`` columns; a ``query`` should say its own ``ORDER BY``: without one, row
numbers and which of two rows with one id is kept may change between builds), with
a server-side cursor fetching ``chunk_size`` rows at a time, so memory stays flat
whatever the table's size. Each chunk is a :class:`~segments.profiles.read.RawChunk`
indexed by 1-based row number in that order, typed and validated exactly as a
file's chunk is; text equal to one of the profiles' ``na_values`` is missing, as
in a CSV file, and NULL is missing.

``${NAME}`` in the URL is replaced by the environment variable ``NAME`` (keep
passwords out of campaign files). A password is never printed: every message
shows the URL with ``***`` in its place. A relative SQLite path is relative to
the campaign's folder. ``postgresql://`` means psycopg 3 (``postgresql+psycopg``).

This is the one module that imports SQLAlchemy (the optional ``sql`` extra).
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segments.errors import ConfigError, ProfileDataError
from segments.profiles.read import DEFAULT_NA_VALUES, RawChunk, _without_na
from segments.profiles.schema import ProfileSchema, infer_schema

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)
_FETCH_HINT = "check that the database is reachable and the statement runs in a SQL client"


@dataclass(frozen=True)
class SqlSource:
    """A table or query of a database, as a campaign names it.

    ``key`` is the campaign key (``profiles`` or ``events``), ``file`` the campaign
    file and ``lines`` the lines of its ``url``, ``query`` and ``table`` keys, so
    that every error points at the line to fix. ``order_by`` orders a ``table``.
    """

    url: str
    query: str | None = None
    table: str | None = None
    order_by: tuple[str, ...] = ()
    key: str = "profiles"
    file: str | None = None
    lines: Mapping[str, int | None] = field(default_factory=dict)
    base_dir: Path = Path(".")

    @property
    def label(self) -> str:
        """The source in messages: the URL with its password masked, and the table."""
        where = f" table {self.table}" if self.table else " query"
        return f"{masked(self.url)}{where}"

    def error(self, message: str, key: str, hint: str) -> ConfigError:
        """A :class:`ConfigError` at the line of ``<key>.<key>`` in the campaign file."""
        return ConfigError(
            f"{self.key}.{key}: {mask_secrets(message, self.url)}",
            file=self.file,
            line=self.lines.get(key),
            hint=hint,
        )


def sql_warnings(source: SqlSource) -> list[str]:
    """Warnings about a source: a ``query`` without ``ORDER BY`` (row order not fixed)."""
    if source.query is not None and not _ORDER_BY.search(source.query):
        return [
            f"{source.key}.query has no ORDER BY: row numbers in the rejections, and which of "
            "two rows with the same id is kept, may change from one build to the next"
        ]
    return []


def read_sql_chunks(
    source: SqlSource, chunk_size: int, *, na_values: Iterable[str] = DEFAULT_NA_VALUES
) -> Generator[RawChunk, None, None]:
    """The profile rows of ``source``, ``chunk_size`` at a time, as raw chunks.

    Values stay as the driver gives them (``object`` columns, so integers past 2**53
    stay exact); the validator types them as it types a Parquet file's.
    """
    na = frozenset(value.strip().lower() for value in na_values)
    start = 1
    for columns, rows in _fetch(source, chunk_size):
        frame = _frame(columns, rows, start)
        start += len(frame)
        yield RawChunk(_without_na(frame, na, None))


def infer_sql_schema(
    source: SqlSource,
    chunk_size: int,
    *,
    id_field: str = "id",
    email_field: str = "email",
    na_values: Iterable[str] = DEFAULT_NA_VALUES,
) -> ProfileSchema:
    """The schema :func:`~segments.profiles.schema.infer_schema` gives the first chunk."""
    with closing(read_sql_chunks(source, chunk_size, na_values=na_values)) as chunks:
        first = next(chunks, None)
    frame = first.frame if first is not None else pd.DataFrame(columns=[id_field, email_field])
    return infer_schema(frame, id_field, email_field)


def read_sql_event_chunks(source: SqlSource, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The event rows of ``source``, ``chunk_size`` at a time (pandas types the columns:
    a timestamp column reads as datetimes, text as text)."""
    start = 1
    for columns, rows in _fetch(source, chunk_size):
        frame = _frame(columns, rows, start)
        start += len(frame)
        yield frame.infer_objects()


def _frame(columns: list[str], rows: Sequence[Any], start: int) -> pd.DataFrame:
    """``rows`` as a frame of ``object`` columns indexed from ``start``, built column by
    column (five times faster than from the rows: pandas takes a row object slowly)."""
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    data = {name: _objects(column) for name, column in zip(columns, values, strict=True)}
    return pd.DataFrame(data, index=pd.RangeIndex(start, start + len(rows)), columns=columns)


def _objects(values: Sequence[Any]) -> Any:
    array = np.empty(len(values), dtype=object)
    array[:] = values  # (np.array would make a 2-D array of equal-length lists)
    return array


def masked(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def mask_secrets(text: str, url: str) -> str:
    """``text`` with the password of ``url`` (as written and as expanded) masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    for candidate in (url, _expand(url, strict=False)):
        try:
            password = make_url(candidate).password
        except (ArgumentError, ValueError):
            continue
        if password:
            text = text.replace(str(password), "***")
    return text


def _expand(url: str, *, strict: bool = True, source: SqlSource | None = None) -> str:
    """``url`` with each ``${NAME}`` replaced by that environment variable."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in os.environ:
            return os.environ[name]
        if strict and source is not None:
            raise source.error(
                f"the environment variable {name} is not set",
                "url",
                f"export {name} before the build (the URL takes ${{{name}}} from the "
                "environment, so that no password is written in the campaign file)",
            )
        return match.group(0)

    return _ENV.sub(value, url)


def _engine(source: SqlSource) -> Any:
    """An engine for ``source.url``: environment expanded, a relative SQLite path made
    relative to the campaign folder, ``postgresql://`` on psycopg 3."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    hint = "write a SQLAlchemy URL: sqlite:///file.db or postgresql://user@host:5432/dbname"
    try:
        url = make_url(_expand(source.url, source=source))
    except (ArgumentError, ValueError):
        raise source.error(f"not a database URL: {masked(source.url)}", "url", hint) from None
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(str(url.database))
        path = path if path.is_absolute() else source.base_dir / path
        if not path.is_file():  # SQLite would create an empty database
            raise source.error(
                f"no SQLite database file at {path}",
                "url",
                "a relative path is relative to the campaign file's folder",
            )
        url = url.set(database=str(path))
    try:
        return create_engine(url)
    except (NoSuchModuleError, ImportError) as exc:
        raise source.error(
            f"no driver for {url.drivername!r} URLs ({type(exc).__name__})",
            "url",
            "install the `sql` extra (pip install 'mailsmith[sql]') for PostgreSQL and "
            "SQLite, or the SQLAlchemy driver of your database",
        ) from None


def _statement(source: SqlSource) -> Any:
    """``SELECT * FROM table ORDER BY order_by`` (names quoted by the dialect)."""
    from sqlalchemy import column, literal_column, select, table

    schema, _, name = str(source.table).rpartition(".")
    statement: Any = select(literal_column("*")).select_from(table(name, schema=schema or None))
    return statement.order_by(*(column(c) for c in source.order_by))


def _fetch(source: SqlSource, chunk_size: int) -> Iterator[tuple[list[str], Sequence[Any]]]:
    """(column names, rows) per chunk, from one statement on one streaming connection."""
    from sqlalchemy.exc import SQLAlchemyError

    engine = _engine(source)
    try:
        try:
            connection = engine.connect()
        except SQLAlchemyError as exc:
            raise source.error(
                f"cannot connect to {masked(source.url)}: {_reason(exc)}",
                "url",
                "check the host, port, database name, user and password (${NAME} in the URL "
                "reads the environment)",
            ) from None
        with connection:
            yield from _stream(source, connection, chunk_size)
    finally:
        engine.dispose()


def _stream(
    source: SqlSource, connection: Any, chunk_size: int
) -> Iterator[tuple[list[str], Sequence[Any]]]:
    from sqlalchemy.exc import SQLAlchemyError

    streaming = connection.execution_options(stream_results=True, yield_per=chunk_size)
    key = "query" if source.query is not None else "table"
    try:
        if source.query is not None:  # as written: no bind parameters, no `:name` parsing
            result = streaming.exec_driver_sql(_as_written(source.query, connection))
        else:
            result = streaming.execute(_statement(source))
    except SQLAlchemyError as exc:
        hint = (
            "run the query in a SQL client to see what the database says"
            if key == "query"
            else "check the table name (schema.table for another schema) and "
            f"{source.key}.order_by, whose columns must exist"
        )
        raise source.error(f"the database refused it: {_reason(exc)}", key, hint) from None
    if not result.returns_rows:
        raise source.error("the statement returns no rows", key, "write a SELECT")
    columns = [str(c) for c in result.keys()]
    try:
        for rows in result.partitions(chunk_size):
            yield columns, rows
    except SQLAlchemyError as exc:  # the driver's text may quote a value: not shown
        raise ProfileDataError(
            f"cannot read the {source.key} from the database ({_kind(exc)})",
            file=source.file,
            line=source.lines.get(key),
            hint=_FETCH_HINT,
        ) from None
    finally:  # a reader left before the end (a build keeps the first chunk only)
        result.close()


def _as_written(query: str, connection: Any) -> str:
    """``query`` for the driver, which would read ``%`` as a placeholder in its
    ``format`` paramstyle (psycopg): doubled, it reads as ``%`` again."""
    if connection.dialect.paramstyle in ("format", "pyformat"):
        return query.replace("%", "%%")
    return query


def _reason(exc: Exception) -> str:
    """The first line of the driver's message (statement errors: a syntax error, an
    unknown table or column; these quote the statement, not the data)."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def _kind(exc: Exception) -> str:
    original = getattr(exc, "orig", None) or exc
    return type(original).__name__

"""The campaign file: one YAML document describing a send, validated with pydantic.

An error names the file, the line, the key path and what was expected::

    demo/campaign.yaml:14: schema.total_spent.type: Input should be 'string', 'int', ...
"""

from __future__ import annotations

import codecs
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from renderer.coupons import CouponSpec
from renderer.delivery import SenderSpec, UnsubscribeSpec
from renderer.limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS
from renderer.tracking import TrackingSpec
from segments.errors import ConfigError
from segments.features.scores import FeatureConfig
from segments.profiles.read import DEFAULT_MAX_MALFORMED, DEFAULT_NA_VALUES
from segments.profiles.schema import ProfileSchema, infer_file_schema
from segments.profiles.sqlread import SqlSource, infer_sql_schema
from segments.recommend.api import RecommendationConfig
from segments.yamlsrc import line_at, load_yaml

FieldType = Literal["string", "int", "float", "bool", "date", "datetime", "list", "dict"]
SHIPPED = Path(__file__).resolve().parent / "_shipped"
REPO_ROOT = Path(__file__).resolve().parent.parent


def shipped_dir(name: str) -> Path:
    """Shipped content folder: the source checkout's, or the installed package data."""
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / name).is_dir():
        return REPO_ROOT / name
    return SHIPPED / name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Model):
    """One profile field: its type, whether a row needs it, and a default."""

    type: FieldType = "string"
    required: bool = False
    default: Any = None


class _TextFile(_Model):
    """A data file the campaign names: its CSV separator and text encoding."""

    path: str
    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="CSV field separator."
    )
    encoding: str = Field(default="utf-8", description="Text encoding of CSV and JSONL files.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown text encoding {value!r} (e.g. utf-8, cp1252, latin-1)"
            ) from None
        return value

    @property
    def reader_options(self) -> dict[str, Any]:
        """``delimiter`` and ``encoding``, as the readers of these files take them."""
        return {"delimiter": self.delimiter, "encoding": self.encoding}


class _SqlOrFile(_TextFile):
    """A file (``path``), or a database table or query (``url`` with ``query`` or
    ``table``; see :mod:`segments.profiles.sqlread`)."""

    path: str = ""
    url: str | None = Field(
        default=None, description="SQLAlchemy database URL; ${NAME} reads the environment."
    )
    query: str | None = Field(default=None, description="SELECT statement (with ORDER BY).")
    table: str | None = Field(default=None, description="Table (or schema.table) to read.")
    order_by: tuple[str, ...] | None = Field(
        default=None, description="Columns a table is read in order of."
    )

    @model_validator(mode="after")
    def _file_or_database(self) -> _SqlOrFile:
        if self.url is None:
            if not self.path:
                raise ValueError("give a file `path`, or a database `url` with `query` or `table`")
            if self.query is not None or self.table is not None or self.order_by is not None:
                raise ValueError("`query`, `table` and `order_by` need a database `url`")
        elif self.path:
            raise ValueError("give a file `path` or a database `url`, not both")
        elif (self.query is None) == (self.table is None):
            raise ValueError("a database `url` needs a `query` or a `table` (one of them)")
        elif self.query is not None and self.order_by is not None:
            raise ValueError("`order_by` orders a `table`: write ORDER BY in the query")
        return self

    @property
    def is_sql(self) -> bool:
        """True for a database source (``url``), False for a file (``path``)."""
        return self.url is not None


class ProfileSource(_SqlOrFile):
    """The profile file, how to read it, and which fields are the id and the address."""

    format: Literal["csv", "jsonl", "parquet"] | None = None
    id_field: str = "id"
    email_field: str = "email"
    chunk_size: int = Field(default=5000, ge=1)
    na_values: tuple[str, ...] = Field(
        default=DEFAULT_NA_VALUES,
        description="CSV cells and JSONL strings read as missing (trimmed, any case).",
    )
    max_malformed: float = Field(
        default=DEFAULT_MAX_MALFORMED,
        ge=0,
        le=1,
        description="Share of CSV data lines that may be malformed (each rejected as "
        "malformed_row) before the whole file fails.",
    )
    email_rules: tuple[Literal["gmail_dots", "plus_tags"], ...] = Field(
        default=(),
        description="Provider rules for comparing addresses (duplicate_email): "
        "gmail_dots, plus_tags (segments/profiles/emails.py).",
    )

    @property
    def reader_options(self) -> dict[str, Any]:
        """``delimiter``, ``encoding``, ``na_values`` and ``max_malformed``, as
        :func:`read_chunks` takes them."""
        options = {**super().reader_options, "na_values": self.na_values}
        return {**options, "max_malformed": self.max_malformed}

    @property
    def resolved_format(self) -> str:
        if self.is_sql:
            return "sql"
        if self.format:
            return self.format
        suffix = Path(self.path).suffix.lower().lstrip(".")
        return {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}.get(suffix, suffix)


class ConsentSpec(_Model):
    field: str


class SuppressionSpec(_TextFile):
    column: Literal["email", "id"] = "email"


class EventsSpec(_SqlOrFile):
    """Behavioural events for derived features: CSV, JSONL or Parquet (by extension), or
    a database table or query."""


class DriftSpec(_Model):
    """Compare this build's feature distributions with an earlier build's (KS test)."""

    baseline: str | None = Field(None, description="An earlier output folder or its JSON file.")
    threshold: float = Field(0.1, gt=0, le=1, description="KS statistic above which to warn.")
    alpha: float | None = Field(0.01, gt=0, lt=1, description="And p-value below this.")


OutputFormat = Literal["files", "jsonl", "parquet", "eml", "mbox"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("files", "jsonl", "parquet", "eml", "mbox")


class OutputSpec(_Model):
    """``output:``: where a build goes and in which form (renderer/build/bundle.py)."""

    dir: str = "out"
    text: bool = True
    format: OutputFormat = Field(
        default="files",
        description="files: two per email; eml: a message each; jsonl, parquet, mbox: shards.",
    )
    shard_size: int = Field(
        default=1000, ge=1, description="Valid input rows per shard (jsonl, parquet, mbox)."
    )
    compression: Literal["none", "zstd"] = Field(
        default="none", description="zstd: JSONL shards as emails-00000.jsonl.zst."
    )


class CheckSpec(_Model):
    """``check:``: settings of ``mailsmith check`` for this campaign."""

    ignore: list[str] = Field(default_factory=list, description="Rule ids switched off.")
    clients: list[str] | None = Field(default=None, description="Email clients the CSS must suit.")


class RenderSpec(_Model):
    """Each recipient's render budget, and what an unsafe URL in ``href``/``src`` does."""

    max_seconds: float = Field(
        default=DEFAULT_MAX_SECONDS, gt=0, description="Time one recipient's render may take."
    )
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES, ge=1_000, description="Largest string a render may build."
    )
    unsafe_urls: Literal["warn", "reject"] = Field(
        default="warn", description="warn: replace the URL (a manifest warning); reject the row."
    )


class PathsSpec(_Model):
    templates: list[str] = ["templates"]
    blocks: list[str] = ["blocks"]


class I18nSpec(_Model):
    """``i18n:``: the recipient's locale and the campaign's catalogs (renderer/i18n/)."""

    default: str = Field(default="en_US", description="Locale of rows without one (BCP 47).")
    field: str = Field(default="locale", description="The profile field holding the locale.")
    currency: str = Field(default="USD", description="ISO 4217 code `money` uses by default.")
    catalogs: str = Field(default="locales", description="<catalogs>/<locale>/LC_MESSAGES/")
    invalid: Literal["reject", "default"] = "reject"  # a row with an unknown locale
    trusted_translations: bool = False  # True: catalog strings may hold HTML


class Campaign(_Model):
    """A validated campaign. Relative paths are relative to ``base_dir``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    template: str
    subject: str
    preheader: str = ""
    as_of: datetime | None = None
    profiles: ProfileSource
    schema_: dict[str, FieldSpec] = Field(default_factory=dict, alias="schema")
    segments: str | dict[str, Any] | None = None
    missing_token: Literal["reject", "blank", "error"] = "reject"
    consent: ConsentSpec | None = None
    suppression: SuppressionSpec | None = None
    unsubscribe_url: str | None = None
    unsubscribe: UnsubscribeSpec | None = None  # signed links (renderer/delivery.py)
    sender: SenderSpec | None = None  # From and Reply-To of eml and mbox messages
    to_name: str | None = Field(default=None, description="The To display name (Jinja).")
    vars: dict[str, Any] = Field(default_factory=dict)
    output: OutputSpec = OutputSpec()
    render: RenderSpec = RenderSpec()
    paths: PathsSpec = PathsSpec()
    experiments: list[dict[str, Any]] = Field(default_factory=list)
    events: EventsSpec | None = None
    features: FeatureConfig | None = None
    drift: DriftSpec | None = None
    recommendations: RecommendationConfig | None = None  # docs/delivery.md, Recommendations
    fixtures: str | None = Field(
        default=None, description="YAML or JSON file of named personas (renderer/fixtures.py)."
    )
    check: CheckSpec = CheckSpec()
    tracking: TrackingSpec | None = None
    i18n: I18nSpec | None = None  # localized content (renderer/i18n/); None: English only
    coupons: CouponSpec | None = None  # single-use codes for a segment (renderer/coupons.py)
    base_dir: Path = Field(default=Path("."), exclude=True)
    file: str = Field(default="<campaign>", exclude=True)
    inferred: tuple[str, ...] = Field(
        default=(), exclude=True, description="Schema fields typed from the data (ad-hoc builds)."
    )

    @field_validator("profiles", mode="before")
    @classmethod
    def _profiles_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("suppression", mode="before")
    @classmethod
    def _suppression_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("events", mode="before")
    @classmethod
    def _events_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("features", "recommendations")
    @classmethod
    def _need_events(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("events") is None:
            what = "derived features" if info.field_name == "features" else "recommendations"
            raise ValueError(f"{what} need an events source: add `events:`")
        return value

    @field_validator("schema_", mode="before")
    @classmethod
    def _schema_shorthand(cls, value: Any) -> Any:
        return _field_shorthand(value)

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _id_and_email_in_schema(self) -> Campaign:
        if self.schema_:
            for key in (self.profiles.id_field, self.profiles.email_field):
                if key not in self.schema_:
                    raise ValueError(f"schema must declare the {key!r} field")
        return self

    @model_validator(mode="after")
    def _one_unsubscribe(self) -> Campaign:
        if self.unsubscribe is not None and self.unsubscribe_url is not None:
            raise ValueError("set `unsubscribe:` (signed links) or `unsubscribe_url:`, not both")
        return self

    def path(self, relative: str) -> Path:
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def sql_source(self, key: Literal["profiles", "events"]) -> SqlSource:
        """The database source of ``profiles:`` or ``events:`` (which must have a ``url``).

        A ``table`` is read in ``order_by`` order: by default the id field for profiles,
        ``profile_id, timestamp`` for events.
        """
        spec = self.profiles if key == "profiles" else self.events
        if spec is None or spec.url is None:
            raise ValueError(f"{key} is not a database source")
        default = (self.profiles.id_field,) if key == "profiles" else ("profile_id", "timestamp")
        return SqlSource(
            url=spec.url,
            query=spec.query,
            table=spec.table,
            order_by=spec.order_by or default,
            key=key,
            file=self.file,
            lines=_source_lines(self.file, key),
            base_dir=self.base_dir,
        )

    def reference_time(self, override: datetime | None = None) -> datetime:
        """``--as-of`` beats the campaign's ``as_of``, which beats now."""
        chosen = override or self.as_of or datetime.now(UTC)
        return chosen if chosen.tzinfo else chosen.replace(tzinfo=UTC)


def _source_lines(file: str, key: str) -> dict[str, int | None]:
    """The lines of ``key``'s ``url``, ``query`` and ``table`` in the campaign file."""
    path = Path(file)
    if not path.is_file():
        return {}
    data = load_yaml(path)
    return {name: line_at(data, [key, name]) for name in ("url", "query", "table", "order_by")}


def _field_shorthand(value: Any) -> Any:
    """``field: type`` is ``field: {type: type}``."""
    if isinstance(value, dict):
        return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


class _SchemaFile(_Model):
    schema_: dict[str, FieldSpec] = Field(alias="schema")

    @field_validator("schema_", mode="before")
    @classmethod
    def _schema_shorthand(cls, value: Any) -> Any:
        return _field_shorthand(value)


def load_schema(path: str | Path) -> dict[str, FieldSpec]:
    """The profile schema in a YAML file: its ``schema:`` mapping (a campaign file will do),
    or, when it has no ``schema:`` mapping, the file itself (``field: type`` lines)."""
    path = Path(path)
    data = load_yaml(path)
    nested = isinstance(data, dict) and isinstance(data.get("schema"), dict)
    mapping = data["schema"] if nested else data
    if not isinstance(mapping, dict):
        raise ConfigError(
            "a schema file must be a YAML mapping",
            file=str(path),
            line=1,
            hint="write one `field: type` per line (string, int, float, bool, date, datetime, "
            "list, dict), or {type, required, default}",
        )
    try:
        return _SchemaFile.model_validate({"schema": mapping}).schema_
    except ValidationError as exc:
        raise _config_error(exc, data, str(path), skip=0 if nested else 1) from None


def infer_campaign_schema(campaign: Campaign) -> ProfileSchema:
    """The schema a build infers from the first chunk of the campaign's profiles."""
    source = campaign.profiles
    if source.is_sql:
        return infer_sql_schema(
            campaign.sql_source("profiles"),
            source.chunk_size,
            id_field=source.id_field,
            email_field=source.email_field,
            na_values=source.na_values,
        )
    return infer_file_schema(
        campaign.path(source.path),
        source.resolved_format,
        source.chunk_size,
        id_field=source.id_field,
        email_field=source.email_field,
        **source.reader_options,
    )


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("a campaign file must be a YAML mapping", file=str(path), line=1)
    return campaign_from_mapping(data, base_dir=path.parent, file=str(path))


def campaign_from_mapping(
    data: dict[str, Any], *, base_dir: Path, file: str, inferred: tuple[str, ...] = ()
) -> Campaign:
    """A validated campaign from a mapping (``inferred``: schema fields typed from data)."""
    try:
        return Campaign.model_validate(
            {**data, "base_dir": base_dir, "file": file, "inferred": inferred}
        )
    except ValidationError as exc:
        raise _config_error(exc, data, file) from None


def _config_error(
    exc: ValidationError, data: dict[str, Any], file: str, *, skip: int = 0
) -> ConfigError:
    """Each problem with its line and key path (``skip``: leading parts of pydantic's
    location that are not in ``data``)."""
    problems = []
    for error in exc.errors():
        loc = list(error["loc"])[skip:]
        problems.append(
            (line_at(data, _yaml_keys(loc)), f"{_dotted(loc) or '(top level)'}: {error['msg']}")
        )
    hint = "see README.md, 'The campaign file', for every key"
    if len(problems) == 1:
        line, message = problems[0]
        return ConfigError(message, file=file, line=line, hint=hint)
    listed = "\n  ".join(
        f"line {line}: {message}" if line else message for line, message in problems
    )
    return ConfigError(f"invalid campaign:\n  {listed}", file=file, hint=hint)


def _yaml_keys(loc: list[Any]) -> list[Any]:
    """Pydantic's location with the YAML's own key names (``schema_`` is ``schema``)."""
    return ["schema" if part == "schema_" else part for part in loc]


def _dotted(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        if part == "schema_":
            part = "schema"
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def adhoc_campaign(
    template: Path,
    profiles: Path,
    segments: Path | None = None,
    *,
    subject: str = "",
    preheader: str = "",
    delimiter: str = ",",
    encoding: str = "utf-8",
    schema: Path | None = None,
) -> Campaign:
    """A campaign for ``build --template --profiles``: no consent rules, and a schema
    inferred from the first chunk of the profiles (``infer_type`` says how), where
    ``schema`` (a file for :func:`load_schema`) does not declare the field.

    The fields typed from the data are listed in the campaign's ``inferred``.
    """
    template = template.resolve()
    folder = template.parent
    data: dict[str, Any] = {
        "name": "adhoc",
        "template": template.name,
        "subject": subject,
        "preheader": preheader,
        "profiles": {
            "path": str(profiles.resolve()),
            "delimiter": delimiter,
            "encoding": encoding,
        },
        "segments": str(segments.resolve()) if segments else None,
        "paths": {
            "templates": [str(folder)],
            "blocks": [str(folder / "blocks"), str(folder.parent / "blocks")],
        },
    }
    base_dir, file = Path.cwd(), "<command line>"
    declared = load_schema(schema) if schema is not None else {}
    untyped = campaign_from_mapping(data, base_dir=base_dir, file=file)
    found = infer_campaign_schema(untyped).fields
    fields = {
        name: declared.get(name)
        or FieldSpec.model_validate({"type": spec.type, "required": spec.required})
        for name, spec in found.items()
    }
    return campaign_from_mapping(
        {**data, "schema": {**fields, **declared}},  # declared fields not in the file last
        base_dir=base_dir,
        file=file,
        inferred=tuple(name for name in found if name not in declared),
    )


def demo_campaign_path() -> Path:
    """The shipped demo campaign file."""
    return shipped_dir("demo") / "campaign.yaml"

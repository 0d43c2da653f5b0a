"""Profiles: read in chunks (:mod:`.read`), typed by a schema (:mod:`.schema`), validated
(:mod:`.validate`); validated chunks kept between passes (:mod:`.spool`) and compact sets of
ids (:mod:`.textindex`)."""

from segments.profiles.read import DEFAULT_NA_VALUES as DEFAULT_NA_VALUES
from segments.profiles.read import RawChunk as RawChunk
from segments.profiles.read import Rejection as Rejection
from segments.profiles.read import column_hint as column_hint
from segments.profiles.read import count_rows as count_rows
from segments.profiles.read import read_chunks as read_chunks
from segments.profiles.schema import FieldDef as FieldDef
from segments.profiles.schema import ProfileSchema as ProfileSchema
from segments.profiles.schema import convert as convert
from segments.profiles.schema import infer_file_schema as infer_file_schema
from segments.profiles.schema import infer_schema as infer_schema
from segments.profiles.schema import infer_type as infer_type
from segments.profiles.schema import missing_mask as missing_mask
from segments.profiles.schema import parse_json as parse_json
from segments.profiles.schema import to_records as to_records
from segments.profiles.spool import ChunkSpool as ChunkSpool
from segments.profiles.spool import ValidatedChunk as ValidatedChunk
from segments.profiles.textindex import SeenTexts as SeenTexts
from segments.profiles.textindex import TextIndex as TextIndex
from segments.profiles.validate import ProfileValidator as ProfileValidator
from segments.profiles.validate import load_suppression as load_suppression

__all__ = [
    "DEFAULT_NA_VALUES",
    "ChunkSpool",
    "FieldDef",
    "ProfileSchema",
    "ProfileValidator",
    "RawChunk",
    "Rejection",
    "SeenTexts",
    "TextIndex",
    "ValidatedChunk",
    "column_hint",
    "convert",
    "count_rows",
    "infer_file_schema",
    "infer_schema",
    "infer_type",
    "load_suppression",
    "missing_mask",
    "parse_json",
    "read_chunks",
    "to_records",
]

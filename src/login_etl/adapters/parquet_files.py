"""Rows to Parquet (zstd) and back, with pyarrow: the optional `archive` extra.

Rows travel as Arrow tables, column by column: `user_logins` comes out of PostgreSQL as COPY CSV
parsed by pyarrow and goes back as CSV written by pyarrow, so no Python object is made per row.
The day is not stored in the file: it is the Hive partition in the path (`create_date=…`), which
is what DuckDB's and pyarrow's `hive_partitioning` read back as a column.

`row_checksum` is the archive's documented row checksum (docs/archive.md, "Row checksum"): the
rules there are what this computes, so that DuckDB or PostgreSQL SQL can recompute it.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from typing import Any

from login_etl.adapters.postgres.archive import USER_LOGINS, Row, Source
from login_etl.errors import ArchiveMismatch, ConfigError

MISSING = "archive and restore need their extra: pip install 'login-etl[archive]' (pyarrow)"

# The checksum rule's name in manifests (format 2); format 1 used Python reprs (ops.archive).
ROW_CHECKSUM_RULE = "sha256-of-sorted-row-sha256-v2"
ROW_CHECKSUM_TEXT = (
    "a row's line: the day (YYYY-MM-DD) and its values in column order, joined by TAB; in each "
    "value's text (integers decimal, timestamps as microseconds since the epoch, bytes as "
    "lowercase hex) a backslash is written \\\\ and a TAB \\t; NULL is \\N. The checksum: "
    "sha256 (hex) of the rows' sha256 hex digests of their UTF-8 lines, sorted and concatenated."
)

Table = Any  # pyarrow.Table: pyarrow ships no type information


def _pa() -> Any:
    # pyarrow's jemalloc pool can abort the process as it exits ("terminate called without an
    # active exception", about 1 run in 10 here): the system allocator has no background threads.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    try:
        import pyarrow as pa  # noqa: PLC0415 - the archive extra is optional
        import pyarrow.compute  # noqa: PLC0415
        import pyarrow.csv  # noqa: PLC0415
        import pyarrow.parquet  # noqa: PLC0415
    except ImportError as err:
        raise ConfigError(MISSING) from err
    return pa


def require() -> None:
    """ConfigError (exit 2, one line) when pyarrow is not installed."""
    _pa()


def _schema(source: Source) -> Any:
    pa = _pa()
    if source is USER_LOGINS:
        fields = [pa.field(c, pa.string()) for c in source.columns[:-1]]
        fields.append(pa.field("app_version", pa.int32()))
    else:
        stamp = pa.timestamp("us", tz="UTC")
        fields = [
            pa.field("message_id", pa.string(), nullable=False),
            pa.field("rejected_at", stamp, nullable=False),
            pa.field("sent_at", stamp),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("body", pa.binary(), nullable=False),
        ]
    return pa.schema(fields)


def schema_of(source: Source) -> dict[str, str]:
    """Column name → Arrow type, for the manifest."""
    return {field.name: str(field.type) for field in _schema(source)}


def from_csv(source: Source, data: bytes) -> Table:
    """The table of PostgreSQL's `COPY … TO STDOUT (FORMAT csv)` output (UTF-8, no header).

    PostgreSQL writes NULL as an empty unquoted field and an empty string as `""`: pyarrow reads
    the first as null and the second as "" (quoted_strings_can_be_null=False), and nothing else
    (no "NULL", "NaN", …) as null.
    """
    pa = _pa()
    schema = _schema(source)
    if not data:  # the day's rows are gone (pyarrow refuses an empty file)
        return schema.empty_table()
    return pa.csv.read_csv(
        io.BytesIO(data),
        read_options=pa.csv.ReadOptions(column_names=schema.names, use_threads=False),
        parse_options=pa.csv.ParseOptions(newlines_in_values=True),
        convert_options=pa.csv.ConvertOptions(
            column_types=schema,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    ).cast(schema)


def from_rows(source: Source, rows: Sequence[Row]) -> Table:
    """The table of rows in the order of `source.columns` (the small, per-row path)."""
    pa = _pa()
    schema = _schema(source)
    columns = [[row[i] for row in rows] for i in range(len(source.columns))]
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)],
        schema=schema,
    )


def to_rows(table: Table) -> list[Row]:
    """The table's rows as tuples (restore of small tables, format-1 checksums)."""
    columns = [column.to_pylist() for column in table.columns]
    return list(zip(*columns, strict=True)) if columns else []


def to_csv(table: Table, day: dt.date | None = None) -> bytes:
    """CSV for `COPY … FROM STDIN (FORMAT csv)`: pyarrow quotes every string and writes NULL as
    an empty unquoted field, which is what PostgreSQL reads as NULL. With `day`, a last column
    holding it (user_logins' create_date, which the files keep in their path)."""
    pa = _pa()
    if day is not None:
        table = table.append_column(
            "create_date", pa.repeat(pa.scalar(day, pa.date32()), table.num_rows)
        )
    sink = io.BytesIO()
    pa.csv.write_csv(table, sink, pa.csv.WriteOptions(include_header=False))
    return sink.getvalue()


def encode(table: Table) -> bytes:
    """A Parquet file (zstd) of the table."""
    pa = _pa()
    sink = io.BytesIO()
    pa.parquet.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def decode(source: Source, data: bytes, where: str) -> Table:
    """The table in a Parquet file; ArchiveMismatch when it is not one, or not of this schema."""
    pa = _pa()
    try:
        table = pa.parquet.read_table(io.BytesIO(data), use_threads=False)
    except (pa.ArrowException, OSError) as err:
        raise ArchiveMismatch(
            f"{where} is not a readable Parquet file ({type(err).__name__})"
        ) from None
    if table.schema.names != list(source.columns):
        raise ArchiveMismatch(f"{where} does not have the columns of {source.name}")
    try:
        return table.cast(_schema(source))
    except (pa.ArrowException, ValueError) as err:
        raise ArchiveMismatch(
            f"{where} does not have the column types of {source.name} ({type(err).__name__})"
        ) from None


def token_probes(table: Table, columns: Iterable[str]) -> list[str]:
    """What to ask PostgreSQL's login_etl.masked_key_id about, for every token in `columns`: the
    whole token for a vault token ("~…", its key is in login_etl.masked_values), else its first 8
    characters (all that holds the key id). Few distinct values where rows number millions."""
    pc = _pa().compute
    probes: set[str] = set()
    for name in columns:
        tokens = pc.drop_null(table.column(name))
        vault = pc.starts_with(tokens, "~")
        probes.update(pc.unique(pc.filter(tokens, vault)).to_pylist())
        inline = pc.filter(tokens, pc.invert(vault))
        probes.update(pc.unique(pc.utf8_slice_codeunits(inline, 0, 8)).to_pylist())
    return sorted(probes)


def _field_text(column: Any) -> Any:
    """A column as the checksum's field text: escaped, NULL still null (see row_checksum)."""
    pa = _pa()
    pc = pa.compute
    kind = column.type
    if pa.types.is_timestamp(kind):
        column = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        column = pa.chunked_array(
            [pa.array([None if v is None else v.hex() for v in column.to_pylist()], pa.string())]
        )
    if not pa.types.is_string(column.type):
        return pc.cast(column, pa.string())  # integers: decimal, no escapes needed
    if pc.any(pc.match_substring_regex(column, r"[\\\t]")).as_py():  # tokens never need this
        column = pc.replace_substring(column, "\\", "\\\\")
        column = pc.replace_substring(column, "\t", "\\t")
    return column


def row_checksum(table: Table, day: dt.date) -> str:
    """The order-independent checksum of the table's rows of `day` (docs/archive.md).

    A row's line: the day (YYYY-MM-DD), then each column in file order, joined by TAB; a value is
    its text (integers in decimal, timestamps as microseconds since the epoch, bytes as lowercase
    hex) with backslash written `\\\\` and TAB `\\t`, and NULL is `\\N`. The checksum is the sha256
    (hex) of the rows' sha256 hex digests of their UTF-8 lines, sorted and concatenated.
    """
    pa = _pa()
    pc = pa.compute
    fields = [_field_text(column) for column in table.columns]
    lines = pc.binary_join_element_wise(
        pa.scalar(day.isoformat()), *fields, "\t", null_handling="replace", null_replacement="\\N"
    )
    sha256 = hashlib.sha256
    digests = b"".join([sha256(line).digest() for line in pc.cast(lines, pa.binary()).to_pylist()])
    packed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(32), table.num_rows, [None, pa.py_buffer(digests)]
    )
    ordered = pc.take(packed, pc.sort_indices(packed))  # bytewise order = order of their hex
    data = ordered.buffers()[1].to_pybytes()[: 32 * table.num_rows] if table.num_rows else b""
    return hashlib.sha256(binascii.hexlify(data)).hexdigest()

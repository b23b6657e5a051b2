"""Rows to Parquet (zstd) and back, with pyarrow: the optional `archive` extra.

The day is not stored in the file: it is the Hive partition in the path (`create_date=…`), which
is what DuckDB's and pyarrow's `hive_partitioning` read back as a column.
"""

from __future__ import annotations

import io
import os
from typing import Any

from login_etl.adapters.postgres.archive import USER_LOGINS, Row, Source
from login_etl.errors import ArchiveMismatch, ConfigError

MISSING = "archive and restore need their extra: pip install 'login-etl[archive]' (pyarrow)"


def _pa() -> Any:
    # pyarrow's jemalloc pool can abort the process as it exits ("terminate called without an
    # active exception", about 1 run in 10 here): the system allocator has no background threads.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    try:
        import pyarrow as pa  # noqa: PLC0415 - the archive extra is optional
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


def encode(source: Source, rows: list[Row]) -> bytes:
    """A Parquet file (zstd) of `rows`, in the order of `source.columns`."""
    pa = _pa()
    schema = _schema(source)
    columns = [[row[i] for row in rows] for i in range(len(source.columns))]
    table = pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)],
        schema=schema,
    )
    sink = io.BytesIO()
    pa.parquet.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def decode(source: Source, data: bytes, where: str) -> list[Row]:
    """The rows of a Parquet file; ArchiveMismatch when it is not one, or not of this schema."""
    pa = _pa()
    try:
        table = pa.parquet.read_table(io.BytesIO(data), use_threads=False)
    except (pa.ArrowException, OSError) as err:
        raise ArchiveMismatch(
            f"{where} is not a readable Parquet file ({type(err).__name__})"
        ) from None
    if table.schema.names != list(source.columns):
        raise ArchiveMismatch(f"{where} does not have the columns of {source.name}")
    columns = [table.column(name).to_pylist() for name in source.columns]
    return list(zip(*columns, strict=True)) if columns else []

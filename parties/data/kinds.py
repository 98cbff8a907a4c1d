"""Which data source a member's ``[data]`` config opens."""

from __future__ import annotations

from parties.config import DataConfig
from parties.data.base import DataSource
from parties.data.csv_source import CsvSource
from parties.data.errors import DataSourceError
from parties.data.sqlite_source import SqliteSource


def open_source(data: DataConfig) -> DataSource:
    """The data source a member's ``[data]`` config describes."""
    if data.kind == "postgresql" and data.omop_mapping is not None:
        from parties.data.omop_source import OmopSource

        return OmopSource(
            data.dsn or "",
            data.omop_mapping,
            password_file=data.password_file,
            password_env=data.password_env,
        )
    if data.kind == "postgresql":
        from parties.data.postgresql_source import PostgresSource

        return PostgresSource(
            data.dsn or "",
            data.table or "",
            password_file=data.password_file,
            password_env=data.password_env,
        )
    if data.kind == "none" or data.path is None:
        raise DataSourceError(
            "this member has no data (data kind 'none'); set kind and path under [data]"
        )
    if data.kind == "csv":
        return CsvSource(data.path)
    if data.kind == "sqlite":
        return SqliteSource(data.path, data.table or "")
    raise DataSourceError(f"unknown data kind {data.kind!r}")


__all__ = ["open_source"]

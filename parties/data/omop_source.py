"""A PostgreSQL source whose rows are persons of an OMOP CDM, columns as a mapping says.

The rows are the query :class:`~parties.data.omop.OmopMapping` builds, one
per person in ``person_id`` order, so data row k is the k-th person by id.
Everything else is the PostgreSQL source's: read-only snapshots, bound
parameters, rows streamed in batches, statistics' aggregates computed in the
database over the mapped query.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from parties.data.errors import DataSourceError
from parties.data.omop import CONCEPT_ANCESTOR, PERSON_ID, OmopMapping, load_mapping
from parties.data.postgresql_source import STATEMENT_TIMEOUT_MS, PostgresSource
from parties.data.sql_filter import Binder


class OmopSource(PostgresSource):
    """The persons of an OMOP CDM database, with the columns a mapping file names."""

    def __init__(
        self,
        dsn: str,
        mapping: Path | OmopMapping,
        *,
        password_file: Path | None = None,
        password_env: str | None = None,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    ) -> None:
        self.mapping = mapping if isinstance(mapping, OmopMapping) else load_mapping(mapping)
        super().__init__(
            dsn,
            "person",
            password_file=password_file,
            password_env=password_env,
            statement_timeout_ms=statement_timeout_ms,
        )

    def __repr__(self) -> str:
        return f"<OmopSource of {len(self.mapping.columns)} mapped columns>"  # never the DSN

    def describe(self) -> str:
        return "the OMOP CDM mapping"

    def relation(self, bind: Binder) -> sql.Composable:
        return sql.SQL("({})").format(self.mapping.query(bind))

    def _schema(
        self, conn: psycopg.Connection
    ) -> tuple[tuple[str, ...], tuple[str, ...], list[str] | None]:
        """The mapped columns, once the CDM tables are found and the query plans."""
        mapping = self.mapping
        missing = [t for t in mapping.tables if t not in _tables(conn, mapping.schema)]
        if missing:
            raise DataSourceError(
                f"the OMOP mapping needs table {missing[0]!r}, which {_where(mapping.schema)}"
                " does not hold"
            )
        asking = mapping.with_descendants
        if asking and CONCEPT_ANCESTOR not in _tables(conn, mapping.vocabulary):
            raise DataSourceError(
                f"the OMOP mapping's column {asking[0].name!r} asks for descendants, which need"
                f" the vocabulary table {CONCEPT_ANCESTOR!r}; {_where(mapping.vocabulary)} does"
                " not hold it (load the vocabulary, or set vocabulary_schema to its schema)"
            )
        bind = Binder()
        query = sql.SQL("SELECT * FROM {} AS r LIMIT 0").format(self.relation(bind))
        conn.execute(query, bind.params)  # a field that does not exist fails here, by its kind
        return self.mapping.names, self.mapping.types, [PERSON_ID]


def _tables(conn: psycopg.Connection, schema: str | None) -> set[str]:
    """The tables and views of ``schema`` (None: the connection's current schema)."""
    return {
        name
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = COALESCE(%s, current_schema())",
            (schema,),
        ).fetchall()
    }


def _where(schema: str | None) -> str:
    return f"schema {schema!r}" if schema else "the connection's schema"


__all__ = ["OmopSource"]

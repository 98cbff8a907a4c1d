"""A hospital's OMOP Common Data Model as job columns: a TOML mapping and the query it makes.

OHDSI hospitals keep research data in the OMOP CDM: one ``person`` row per
patient, ``measurement`` rows by ``measurement_concept_id``, diagnoses in
``condition_occurrence`` by ``condition_concept_id``. A mapping names the
columns a job may ask for and where each comes from; the source is then
one row per person (ordered by ``person_id``, which is always a column and
the patient identifier for consent)::

    reference_date = "2024-01-01"  # ages, and "on or before", are taken at this date
    schema = "cdm"                 # optional: the CDM tables' schema
    vocabulary_schema = "vocab"    # optional: concept_ancestor's schema (default: schema)

    [columns.age]
    source = "age"                 # year(reference_date) - person.year_of_birth

    [columns.gender]
    source = "person"
    field = "gender_concept_id"    # a numeric column of person, as it is

    [columns.sbp]
    source = "measurement"
    concept_id = 3004249           # systolic blood pressure
    value = "latest"               # or "mean": of value_as_number, on or before the date

    [columns.diabetes]
    source = "condition"
    concept_ids = [201826]         # 1 if any on or before the date, else 0

    [columns.any_diabetes]
    source = "condition"
    concept_ids = [201820]         # diabetes mellitus ...
    descendants = true             # ... and every concept under it in the vocabulary

A measurement is missing for a person with no value (``value_as_number``
NULL does not count) on or before the reference date; "latest" takes the
last by ``measurement_date``, then the largest ``measurement_id``. Age uses
the year of birth only, as many CDM instances hold no more.

``descendants = true`` (a measurement or condition column) widens the
listed concepts to every concept under them, as OHDSI concept sets do: the
listed ids and each ``descendant_concept_id`` the vocabulary table
``concept_ancestor`` gives for them, at any level of separation (the table
holds the hierarchy's transitive closure). The set is worked out inside the
query, from the CDM schema or ``vocabulary_schema`` when the vocabulary is
kept apart. The query is composed with ``psycopg.sql``: every name is a
quoted identifier, every concept id and the date are bound parameters.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from parties.data.errors import DataSourceError
from parties.data.sql_filter import Binder, quoted

PERSON_ID = "person_id"
CONCEPT_ANCESTOR = "concept_ancestor"
SOURCES = ("age", "person", "measurement", "condition")
VALUES = ("latest", "mean")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class OmopMappingError(DataSourceError):
    """An OMOP mapping file is unreadable or does not say where a column comes from."""


@dataclass(frozen=True)
class MappedColumn:
    """One job column and where the CDM holds it."""

    name: str
    source: str
    field: str | None = None
    concept_ids: tuple[int, ...] = ()
    value: str = "latest"
    descendants: bool = False

    @property
    def data_type(self) -> str:
        """The column's type as the pushdown sees it (integers for age and flags)."""
        return "integer" if self.source in ("age", "condition") else "double precision"


@dataclass(frozen=True)
class OmopMapping:
    """The columns of a mapping, its reference date and the schema of the CDM tables."""

    reference_date: datetime.date
    columns: tuple[MappedColumn, ...]
    schema: str | None = None
    vocabulary_schema: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (PERSON_ID, *(c.name for c in self.columns))

    @property
    def types(self) -> tuple[str, ...]:
        return ("bigint", *(c.data_type for c in self.columns))

    @property
    def tables(self) -> tuple[str, ...]:
        """The CDM tables the query reads."""
        used = {"person"}
        used.update("measurement" for c in self.columns if c.source == "measurement")
        used.update("condition_occurrence" for c in self.columns if c.source == "condition")
        return tuple(sorted(used))

    @property
    def vocabulary(self) -> str | None:
        """The schema of the vocabulary tables: ``vocabulary_schema``, else the CDM's."""
        return self.vocabulary_schema if self.vocabulary_schema is not None else self.schema

    @property
    def with_descendants(self) -> tuple[MappedColumn, ...]:
        """The columns whose concepts include their descendants (they need concept_ancestor)."""
        return tuple(c for c in self.columns if c.descendants)

    def _table(self, name: str) -> sql.Composable:
        if self.schema is None:
            return quoted(name)
        return quoted(self.schema, name)

    def _concepts(self, field: str, column: MappedColumn, bind: Binder) -> sql.Composable:
        """True where ``field`` is one of the column's concepts (or, asked, their descendants).

        With descendants the set is an array the server works out once: the
        listed ids and every descendant ``concept_ancestor`` holds for them.
        """
        ids = bind(list(column.concept_ids))
        if not column.descendants:
            return sql.SQL("{} = ANY({}::bigint[])").format(quoted(field), ids)
        vocabulary = self.vocabulary
        ancestry = (
            quoted(CONCEPT_ANCESTOR) if vocabulary is None else quoted(vocabulary, CONCEPT_ANCESTOR)
        )
        return sql.SQL(
            "{f} = ANY(ARRAY(SELECT unnest({ids}::bigint[]) UNION"
            " SELECT ca.descendant_concept_id::bigint FROM {ca} AS ca"
            " WHERE ca.ancestor_concept_id = ANY({ids}::bigint[])))"
        ).format(f=quoted(field), ids=ids, ca=ancestry)

    def query(self, bind: Binder) -> sql.Composed:
        """One row per person with every mapped column (see the module docstring)."""
        date = bind(self.reference_date)
        selected: list[sql.Composable] = [sql.SQL("p.person_id::bigint AS person_id")]
        joins: list[sql.Composable] = []
        for j, column in enumerate(self.columns):
            alias = quoted(f"j{j}")
            out = quoted(column.name)
            if column.source == "age":
                year = bind(self.reference_date.year)
                selected.append(sql.SQL("({}::integer - p.year_of_birth) AS {}").format(year, out))
            elif column.source == "person":
                assert column.field is not None
                selected.append(sql.SQL("p.{}::float8 AS {}").format(quoted(column.field), out))
            elif column.source == "measurement":
                where = sql.SQL(
                    "{} AND value_as_number IS NOT NULL AND measurement_date <= {}::date"
                ).format(self._concepts("measurement_concept_id", column, bind), date)
                if column.value == "mean":
                    inner = sql.SQL(
                        "SELECT person_id, avg(value_as_number::float8) AS value FROM {} WHERE {}"
                        " GROUP BY person_id"
                    ).format(self._table("measurement"), where)
                else:
                    inner = sql.SQL(
                        "SELECT DISTINCT ON (person_id) person_id, value_as_number::float8 AS value"
                        " FROM {} WHERE {}"
                        " ORDER BY person_id, measurement_date DESC, measurement_id DESC"
                    ).format(self._table("measurement"), where)
                joins.append(
                    sql.SQL(" LEFT JOIN ({}) AS {a} ON {a}.person_id = p.person_id").format(
                        inner, a=alias
                    )
                )
                selected.append(sql.SQL("{}.value AS {}").format(alias, out))
            else:  # condition
                inner = sql.SQL(
                    "SELECT DISTINCT person_id FROM {} WHERE {}"
                    " AND condition_start_date <= {}::date"
                ).format(
                    self._table("condition_occurrence"),
                    self._concepts("condition_concept_id", column, bind),
                    date,
                )
                joins.append(
                    sql.SQL(" LEFT JOIN ({}) AS {a} ON {a}.person_id = p.person_id").format(
                        inner, a=alias
                    )
                )
                selected.append(
                    sql.SQL("({}.person_id IS NOT NULL)::integer AS {}").format(alias, out)
                )
        return sql.SQL("SELECT {} FROM {} AS p{}").format(
            sql.SQL(", ").join(selected), self._table("person"), sql.SQL("").join(joins)
        )


def load_mapping(path: Path) -> OmopMapping:
    """Read and check a mapping file; errors name the file and the key."""
    try:
        with Path(path).open("rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise OmopMappingError(f"cannot read OMOP mapping {path} ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise OmopMappingError(f"OMOP mapping {path} is not valid TOML: {exc}") from None
    return parse_mapping(raw, str(path))


def parse_mapping(raw: Mapping[str, object], where: str = "the OMOP mapping") -> OmopMapping:
    """The mapping a parsed TOML document describes."""

    def error(key: str, reason: str) -> OmopMappingError:
        return OmopMappingError(f"{where}: {key} {reason}")

    keys = ("reference_date", "schema", "vocabulary_schema", "columns")
    unknown = set(raw) - set(keys)
    if unknown:
        raise error(sorted(unknown)[0], f"is not a key ({', '.join(keys)})")
    date = raw.get("reference_date")
    if isinstance(date, str):
        try:
            date = datetime.date.fromisoformat(date)
        except ValueError:
            raise error("reference_date", "must be a date such as 2024-01-01") from None
    if not isinstance(date, datetime.date) or isinstance(date, datetime.datetime):
        raise error("reference_date", "must be a date such as 2024-01-01")
    schema, vocabulary = raw.get("schema"), raw.get("vocabulary_schema")
    for key, value in (("schema", schema), ("vocabulary_schema", vocabulary)):
        if value is not None and not (isinstance(value, str) and _NAME.fullmatch(value)):
            raise error(key, "must be an identifier (letters, digits and '_')")
    given = raw.get("columns")
    if not isinstance(given, Mapping) or not given:
        raise error("columns", "must map at least one column name to its source")
    columns = []
    for name, spec in given.items():
        key = f"columns.{name}"
        if not _NAME.fullmatch(name) or name == PERSON_ID:
            raise error(key, f"must be an identifier other than {PERSON_ID}")
        if not isinstance(spec, Mapping):
            raise error(key, "must be a table with a source")
        columns.append(_column(name, spec, error))
    return OmopMapping(
        date,
        tuple(columns),
        None if schema is None else str(schema),
        None if vocabulary is None else str(vocabulary),
    )


def _column(
    name: str, spec: Mapping[str, object], error: Callable[[str, str], OmopMappingError]
) -> MappedColumn:
    key = f"columns.{name}"
    source = spec.get("source")
    allowed = {
        "age": {"source"},
        "person": {"source", "field"},
        "measurement": {"source", "concept_id", "value", "descendants"},
        "condition": {"source", "concept_ids", "descendants"},
    }
    if source not in SOURCES:
        raise error(f"{key}.source", f"must be one of {', '.join(SOURCES)}")
    extra = set(spec) - allowed[str(source)]
    if extra:
        raise error(f"{key}.{sorted(extra)[0]}", f"is not a key of a {source} column")
    if source == "age":
        return MappedColumn(name, "age")
    if source == "person":
        field = spec.get("field")
        if not (isinstance(field, str) and _NAME.fullmatch(field)):
            raise error(f"{key}.field", "must name a column of person")
        return MappedColumn(name, "person", field=field)
    descendants = spec.get("descendants", False)
    if not isinstance(descendants, bool):
        raise error(f"{key}.descendants", "must be true or false")
    if source == "measurement":
        concept = spec.get("concept_id")
        if not isinstance(concept, int) or isinstance(concept, bool) or concept <= 0:
            raise error(f"{key}.concept_id", "must be a positive measurement_concept_id")
        value = spec.get("value", "latest")
        if value not in VALUES:
            raise error(f"{key}.value", f"must be one of {', '.join(VALUES)}")
        return MappedColumn(
            name, "measurement", concept_ids=(concept,), value=str(value), descendants=descendants
        )
    concepts = spec.get("concept_ids")
    if (
        not isinstance(concepts, list)
        or not concepts
        or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in concepts)
    ):
        raise error(f"{key}.concept_ids", "must list positive condition_concept_ids")
    return MappedColumn(name, "condition", concept_ids=tuple(concepts), descendants=descendants)


__all__ = [
    "CONCEPT_ANCESTOR",
    "PERSON_ID",
    "MappedColumn",
    "OmopMapping",
    "OmopMappingError",
    "load_mapping",
    "parse_mapping",
]

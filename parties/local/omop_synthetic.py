"""A small synthetic OMOP CDM data set, made from a seed, for tests and the demo.

No real patient is in it. It fills the columns of ``person``,
``measurement`` and ``condition_occurrence`` (OMOP CDM v5.4 names and types)
that the mapping reads, plus the required keys: persons with a year of
birth and a gender concept; systolic blood pressure (concept 3004249) and
HbA1c (3004410) measurements on dates around the reference date, some
without a value; type 2 diabetes (201826) and essential hypertension
(320128) diagnoses, some dated after the reference date. The same seed and
size always give the same rows, and :class:`SyntheticOmop` keeps them as
numpy arrays so a test can work out the expected columns without SQL.
"""

from __future__ import annotations

import datetime
import io
import secrets
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

SYSTOLIC_BP = 3004249
HBA1C = 3004410
TYPE_2_DIABETES = 201826
HYPERTENSION = 320128
MALE, FEMALE = 8507, 8532
REFERENCE_DATE = datetime.date(2024, 1, 1)
_FIRST_DAY = np.datetime64("2016-01-01")
_DAYS = 9 * 365  # dates run to about the end of 2024, past the reference date

EXAMPLE_MAPPING = f"""\
# Job columns from this hospital's OMOP CDM (see parties.data.omop).
reference_date = "{REFERENCE_DATE.isoformat()}"

[columns.age]
source = "age"

[columns.gender]
source = "person"
field = "gender_concept_id"

[columns.sbp]
source = "measurement"
concept_id = {SYSTOLIC_BP}
value = "latest"

[columns.hba1c]
source = "measurement"
concept_id = {HBA1C}
value = "mean"

[columns.diabetes]
source = "condition"
concept_ids = [{TYPE_2_DIABETES}]
"""
"""A mapping of the synthetic data set: the columns the tests and the demo use."""


@dataclass(frozen=True)
class SyntheticOmop:
    """The rows written, as arrays (one per CDM column)."""

    person_id: np.ndarray
    year_of_birth: np.ndarray
    gender_concept_id: np.ndarray
    measurement_id: np.ndarray
    measurement_person: np.ndarray
    measurement_concept: np.ndarray
    measurement_date: np.ndarray  # datetime64[D]
    measurement_value: np.ndarray  # NaN where value_as_number is NULL
    condition_id: np.ndarray
    condition_person: np.ndarray
    condition_concept: np.ndarray
    condition_date: np.ndarray  # datetime64[D]


def generate(persons: int, seed: int, *, first_id: int = 1) -> SyntheticOmop:
    """``persons`` persons with ids from ``first_id``; deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + persons, dtype=np.int64)
    born = rng.integers(1935, 2004, persons)
    gender = np.where(rng.random(persons) < 0.5, MALE, FEMALE)
    age = REFERENCE_DATE.year - born
    diabetic = rng.random(persons) < 0.12 + 0.004 * (age - 20)

    # 0 to 4 blood pressures and 0 to 2 HbA1c per person, on random days
    bp_n = rng.integers(0, 5, persons)
    a1c_n = rng.integers(0, 3, persons)
    who = np.concatenate([np.repeat(ids, bp_n), np.repeat(ids, a1c_n)])
    concept = np.concatenate(
        [np.full(bp_n.sum(), SYSTOLIC_BP), np.full(a1c_n.sum(), HBA1C)]
    ).astype(np.int64)
    days = rng.integers(0, _DAYS, len(who))
    index = who - first_id
    bp = 105 + 0.45 * age[index] + rng.normal(0, 12, len(who))
    a1c = 5.2 + 1.6 * diabetic[index] + rng.normal(0, 0.5, len(who))
    value = np.round(np.where(concept == SYSTOLIC_BP, bp, a1c), 1)
    value[rng.random(len(who)) < 0.05] = np.nan  # recorded without a value
    order = np.lexsort((days, who))  # by person, then date, as a CDM export would be
    m_ids = np.arange(1, len(who) + 1, dtype=np.int64)

    dx_people = ids[diabetic]
    htn_people = ids[rng.random(persons) < 0.3]
    c_person = np.concatenate([dx_people, htn_people])
    c_concept = np.concatenate(
        [np.full(len(dx_people), TYPE_2_DIABETES), np.full(len(htn_people), HYPERTENSION)]
    ).astype(np.int64)
    c_days = rng.integers(0, _DAYS, len(c_person))
    return SyntheticOmop(
        person_id=ids,
        year_of_birth=born.astype(np.int64),
        gender_concept_id=gender.astype(np.int64),
        measurement_id=m_ids,
        measurement_person=who[order],
        measurement_concept=concept[order],
        measurement_date=_FIRST_DAY + days[order],
        measurement_value=value[order],
        condition_id=np.arange(1, len(c_person) + 1, dtype=np.int64),
        condition_person=c_person,
        condition_concept=c_concept,
        condition_date=_FIRST_DAY + c_days,
    )


def demo_password() -> str:
    """A fresh random password for a throwaway demo server."""
    return secrets.token_urlsafe(18)


def mapped_columns(data: SyntheticOmop) -> dict[str, np.ndarray]:
    """The columns of :data:`EXAMPLE_MAPPING` per person, worked out in Python (for the demo).

    NaN where a person has no such measurement on or before the reference date.
    """
    ref = np.datetime64(REFERENCE_DATE)
    n = len(data.person_id)
    out = {
        "age": (REFERENCE_DATE.year - data.year_of_birth).astype(np.float64),
        "gender": data.gender_concept_id.astype(np.float64),
        "sbp": np.full(n, np.nan),
        "hba1c": np.full(n, np.nan),
        "diabetes": np.zeros(n),
    }
    row = {int(p): i for i, p in enumerate(data.person_id)}
    usable = (data.measurement_date <= ref) & ~np.isnan(data.measurement_value)
    latest: dict[int, tuple[np.datetime64, int]] = {}
    sums: dict[int, list[float]] = {}
    for k in np.flatnonzero(usable):
        person = int(data.measurement_person[k])
        if data.measurement_concept[k] == SYSTOLIC_BP:
            key = (data.measurement_date[k], int(data.measurement_id[k]))
            if person not in latest or key > latest[person]:
                latest[person] = key
                out["sbp"][row[person]] = data.measurement_value[k]
        elif data.measurement_concept[k] == HBA1C:
            sums.setdefault(person, []).append(float(data.measurement_value[k]))
    for person, values in sums.items():
        out["hba1c"][row[person]] = float(np.mean(values))
    sick = (data.condition_concept == TYPE_2_DIABETES) & (data.condition_date <= ref)
    for person in set(data.condition_person[sick].tolist()):
        out["diabetes"][row[int(person)]] = 1.0
    return out


_TABLES = {
    "person": (
        "person_id bigint PRIMARY KEY, gender_concept_id integer NOT NULL,"
        " year_of_birth integer NOT NULL, month_of_birth integer, day_of_birth integer,"
        " race_concept_id integer NOT NULL DEFAULT 0,"
        " ethnicity_concept_id integer NOT NULL DEFAULT 0"
    ),
    "measurement": (
        "measurement_id bigint PRIMARY KEY, person_id bigint NOT NULL,"
        " measurement_concept_id integer NOT NULL, measurement_date date NOT NULL,"
        " measurement_type_concept_id integer NOT NULL DEFAULT 32817,"
        " value_as_number numeric, unit_concept_id integer"
    ),
    "condition_occurrence": (
        "condition_occurrence_id bigint PRIMARY KEY, person_id bigint NOT NULL,"
        " condition_concept_id integer NOT NULL, condition_start_date date NOT NULL,"
        " condition_type_concept_id integer NOT NULL DEFAULT 32817"
    ),
}


def write(conn: psycopg.Connection, data: SyntheticOmop, schema: str | None = None) -> None:
    """Create the three CDM tables (dropping old ones) in ``schema`` and COPY the rows in."""

    def table(name: str) -> sql.Composable:
        return sql.Identifier(schema, name) if schema else sql.Identifier(name)

    if schema:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    for name, columns in _TABLES.items():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(table(name)))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table(name), sql.SQL(columns)))
    _copy(
        conn,
        table("person"),
        ["person_id", "gender_concept_id", "year_of_birth"],
        [data.person_id, data.gender_concept_id, data.year_of_birth],
    )
    _copy(
        conn,
        table("measurement"),
        ["measurement_id", "person_id", "measurement_concept_id", "measurement_date",
         "value_as_number"],
        [data.measurement_id, data.measurement_person, data.measurement_concept,
         data.measurement_date, data.measurement_value],
    )  # fmt: skip
    _copy(
        conn,
        table("condition_occurrence"),
        ["condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date"],
        [data.condition_id, data.condition_person, data.condition_concept, data.condition_date],
    )
    conn.execute(
        sql.SQL("CREATE INDEX ON {} (measurement_concept_id, person_id)").format(
            table("measurement")
        )
    )
    conn.execute(sql.SQL("ANALYZE"))


def _copy(
    conn: psycopg.Connection, table: sql.Composable, names: list[str], arrays: list[np.ndarray]
) -> None:
    """COPY columns of numbers and dates in text format (NaN is written as NULL)."""
    cells = []
    for array in arrays:
        if np.issubdtype(array.dtype, np.floating):
            text = np.char.mod("%.1f", array).astype(object)
            text[np.isnan(array)] = "\\N"
            cells.append(text)
        else:
            cells.append(array.astype(str).astype(object))
    buffer = io.StringIO()
    for row in zip(*cells, strict=True):
        buffer.write("\t".join(row))
        buffer.write("\n")
    listed = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, listed)) as copy,
    ):
        copy.write(buffer.getvalue())


__all__ = [
    "EXAMPLE_MAPPING",
    "HBA1C",
    "REFERENCE_DATE",
    "SYSTOLIC_BP",
    "TYPE_2_DIABETES",
    "SyntheticOmop",
    "demo_password",
    "generate",
    "mapped_columns",
    "write",
]

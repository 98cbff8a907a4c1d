"""A small synthetic OMOP CDM data set, made from a seed, for tests and the demo.

No real patient is in it. It fills the columns of ``person``,
``measurement``, ``condition_occurrence`` and the vocabulary table
``concept_ancestor`` (OMOP CDM v5.4 names and types) that the mapping
reads, plus the required keys: persons with a year of birth and a gender
concept; systolic blood pressure (concept 3004249) and HbA1c (3004410)
measurements on dates around the reference date, some without a value;
type 2 diabetes (201826) and essential hypertension (320128) diagnoses,
some dated after the reference date. A small concept hierarchy
(:data:`PARENTS`) puts type 2 and type 1 diabetes (201254) under diabetes
mellitus (201820), a site-local complication concept under type 2
diabetes, and a site-local point-of-care HbA1c under HbA1c; some persons
have those diagnoses and measurements. Site-local concepts take ids above
2 000 000 000, the range OMOP leaves to sites. ``concept_ancestor`` holds
the hierarchy's transitive closure with each concept its own descendant at
level 0, as the standard vocabularies do. The same seed and size always
give the same rows, and :class:`SyntheticOmop` keeps them as numpy arrays
so a test can work out the expected columns without SQL.
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
DIABETES_MELLITUS = 201820
TYPE_1_DIABETES = 201254
T2D_COMPLICATION = 2_000_000_101
"""A site-local concept: type 2 diabetes with a complication."""
HBA1C_POINT_OF_CARE = 2_000_000_201
"""A site-local concept: HbA1c measured at the point of care."""
PARENTS = {
    TYPE_2_DIABETES: DIABETES_MELLITUS,
    TYPE_1_DIABETES: DIABETES_MELLITUS,
    T2D_COMPLICATION: TYPE_2_DIABETES,
    HBA1C_POINT_OF_CARE: HBA1C,
}
"""The synthetic vocabulary's hierarchy: each child concept and its parent."""
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

[columns.any_diabetes]
source = "condition"
concept_ids = [{DIABETES_MELLITUS}]  # diabetes mellitus and every concept under it
descendants = true

[columns.hba1c_any]
source = "measurement"
concept_id = {HBA1C}  # HbA1c, point-of-care ones included
value = "latest"
descendants = true
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
    ancestor_concept: np.ndarray  # concept_ancestor rows, closure of PARENTS
    descendant_concept: np.ndarray
    levels: np.ndarray  # min = max levels of separation (the hierarchy is a tree)


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

    dx_people = ids[diabetic]
    htn_people = ids[rng.random(persons) < 0.3]
    c_person = np.concatenate([dx_people, htn_people])
    c_concept = np.concatenate(
        [np.full(len(dx_people), TYPE_2_DIABETES), np.full(len(htn_people), HYPERTENSION)]
    ).astype(np.int64)
    c_days = rng.integers(0, _DAYS, len(c_person))

    # Concepts under others in the hierarchy, drawn after the rest so the rows above stay
    # what they were before the hierarchy: type 1 diabetes, the local complication concept
    # (given to some type 2 diabetics), and 0 or 1 point-of-care HbA1c per person.
    t1_people = ids[(rng.random(persons) < 0.02) & ~diabetic]
    comp_people = ids[diabetic & (rng.random(persons) < 0.4)]
    poc_people = ids[rng.random(persons) < 0.3]
    x_person = np.concatenate([t1_people, comp_people])
    x_concept = np.concatenate(
        [np.full(len(t1_people), TYPE_1_DIABETES), np.full(len(comp_people), T2D_COMPLICATION)]
    ).astype(np.int64)
    x_days = rng.integers(0, _DAYS, len(x_person))
    poc_days = rng.integers(0, _DAYS, len(poc_people))
    poc_value = np.round(
        5.2 + 1.6 * diabetic[poc_people - first_id] + rng.normal(0, 0.5, len(poc_people)), 1
    )
    m_person = np.concatenate([who[order], poc_people])
    c_all = np.concatenate([c_person, x_person])
    ancestor, descendant, levels = _closure()
    return SyntheticOmop(
        person_id=ids,
        year_of_birth=born.astype(np.int64),
        gender_concept_id=gender.astype(np.int64),
        measurement_id=np.arange(1, len(m_person) + 1, dtype=np.int64),
        measurement_person=m_person,
        measurement_concept=np.concatenate(
            [concept[order], np.full(len(poc_people), HBA1C_POINT_OF_CARE, dtype=np.int64)]
        ),
        measurement_date=np.concatenate([_FIRST_DAY + days[order], _FIRST_DAY + poc_days]),
        measurement_value=np.concatenate([value[order], poc_value]),
        condition_id=np.arange(1, len(c_all) + 1, dtype=np.int64),
        condition_person=c_all,
        condition_concept=np.concatenate([c_concept, x_concept]),
        condition_date=_FIRST_DAY + np.concatenate([c_days, x_days]),
        ancestor_concept=ancestor,
        descendant_concept=descendant,
        levels=levels,
    )


def _closure() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """concept_ancestor rows for :data:`PARENTS`: every (ancestor, descendant, levels) pair.

    Every concept of the data set is its own descendant at level 0, as in the
    standard vocabularies, including those with no parent or child.
    """
    concepts = {SYSTOLIC_BP, HBA1C, TYPE_2_DIABETES, HYPERTENSION, *PARENTS, *PARENTS.values()}
    rows = []
    for concept in sorted(concepts):
        at, level = concept, 0
        while True:
            rows.append((at, concept, level))
            if at not in PARENTS:
                break
            at, level = PARENTS[at], level + 1
    table = np.array(rows, dtype=np.int64)
    return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()


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
        "any_diabetes": np.zeros(n),
        "hba1c_any": np.full(n, np.nan),
    }
    row = {int(p): i for i, p in enumerate(data.person_id)}
    usable = (data.measurement_date <= ref) & ~np.isnan(data.measurement_value)
    under_hba1c = concept_set(data, [HBA1C])
    latest: dict[tuple[str, int], tuple[np.datetime64, int]] = {}
    sums: dict[int, list[float]] = {}
    for k in np.flatnonzero(usable):
        person = int(data.measurement_person[k])
        concept = int(data.measurement_concept[k])
        key = (data.measurement_date[k], int(data.measurement_id[k]))
        for name, wanted in (("sbp", {SYSTOLIC_BP}), ("hba1c_any", under_hba1c)):
            if concept in wanted and ((name, person) not in latest or key > latest[name, person]):
                latest[name, person] = key
                out[name][row[person]] = data.measurement_value[k]
        if concept == HBA1C:
            sums.setdefault(person, []).append(float(data.measurement_value[k]))
    for person, values in sums.items():
        out["hba1c"][row[person]] = float(np.mean(values))
    for name, wanted in (
        ("diabetes", {TYPE_2_DIABETES}),
        ("any_diabetes", concept_set(data, [DIABETES_MELLITUS])),
    ):
        sick = np.isin(data.condition_concept, list(wanted)) & (data.condition_date <= ref)
        for person in set(data.condition_person[sick].tolist()):
            out[name][row[int(person)]] = 1.0
    return out


def concept_set(data: SyntheticOmop, concepts: list[int]) -> set[int]:
    """The concepts and all their descendants, read from the data set's concept_ancestor rows."""
    under = np.isin(data.ancestor_concept, concepts)
    return set(concepts) | set(data.descendant_concept[under].tolist())


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
    "concept_ancestor": (
        "ancestor_concept_id integer NOT NULL, descendant_concept_id integer NOT NULL,"
        " min_levels_of_separation integer NOT NULL, max_levels_of_separation integer NOT NULL"
    ),
}


def write(conn: psycopg.Connection, data: SyntheticOmop, schema: str | None = None) -> None:
    """Create the tables (dropping old ones) in ``schema`` and COPY the rows in."""

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
    _copy(
        conn,
        table("concept_ancestor"),
        ["ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation",
         "max_levels_of_separation"],
        [data.ancestor_concept, data.descendant_concept, data.levels, data.levels],
    )  # fmt: skip
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
    "DIABETES_MELLITUS",
    "EXAMPLE_MAPPING",
    "HBA1C",
    "HBA1C_POINT_OF_CARE",
    "PARENTS",
    "REFERENCE_DATE",
    "SYSTOLIC_BP",
    "T2D_COMPLICATION",
    "TYPE_1_DIABETES",
    "TYPE_2_DIABETES",
    "SyntheticOmop",
    "concept_set",
    "demo_password",
    "generate",
    "mapped_columns",
    "write",
]

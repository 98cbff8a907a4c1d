"""OMOP CDM sources on a real PostgreSQL server, against the synthetic data worked out in Python.

The synthetic generator keeps what it wrote as arrays; the oracle below
derives each mapped column from those arrays with plain Python and numpy
(latest value by date then id, mean, flags, concept sets widened by the
concept_ancestor rows), independently of the SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from parties.config import ConfigError, DataConfig
from parties.data.errors import DataSourceError
from parties.data.kinds import open_source
from parties.data.omop import OmopMappingError, load_mapping, parse_mapping
from parties.data.omop_source import OmopSource
from parties.local import omop_synthetic as synth
from protocols.statistics import contexts, run_local
from smpc.local import LocalFederation

ENV = "SMPC_TEST_PG_PASSWORD"
HOSPITALS = {"h1": (400, 21), "h2": (300, 22), "h3": (500, 23)}
COLUMNS = ["person_id", "age", "gender", "sbp", "hba1c", "diabetes", "any_diabetes", "hba1c_any"]


def _under(data: synth.SyntheticOmop, concept: int) -> set[int]:
    """The concept and those the data set's concept_ancestor rows put under it."""
    return {concept} | {
        int(d)
        for a, d in zip(data.ancestor_concept, data.descendant_concept, strict=True)
        if a == concept
    }


def _expected(data: synth.SyntheticOmop) -> np.ndarray:
    """The mapped columns per person, from the generator's arrays (NaN where missing)."""
    ref = np.datetime64(synth.REFERENCE_DATE)
    any_diabetes = _under(data, synth.DIABETES_MELLITUS)
    any_hba1c = _under(data, synth.HBA1C)
    out = np.full((len(data.person_id), len(COLUMNS)), np.nan)
    for i, pid in enumerate(data.person_id):
        out[i, 0] = pid
        out[i, 1] = synth.REFERENCE_DATE.year - data.year_of_birth[i]
        out[i, 2] = data.gender_concept_id[i]
        mine = (
            (data.measurement_person == pid)
            & (data.measurement_date <= ref)
            & ~np.isnan(data.measurement_value)
        )
        bp = np.flatnonzero(mine & (data.measurement_concept == synth.SYSTOLIC_BP))
        if len(bp):
            last = max(bp, key=lambda k: (data.measurement_date[k], data.measurement_id[k]))
            out[i, 3] = data.measurement_value[last]
        a1c = mine & (data.measurement_concept == synth.HBA1C)
        if a1c.any():
            out[i, 4] = data.measurement_value[a1c].mean()
        sick = (data.condition_person == pid) & (data.condition_date <= ref)
        out[i, 5] = float((sick & (data.condition_concept == synth.TYPE_2_DIABETES)).any())
        out[i, 6] = float(any(int(c) in any_diabetes for c in data.condition_concept[sick]))
        tested = [k for k in np.flatnonzero(mine) if int(data.measurement_concept[k]) in any_hba1c]
        if tested:
            last = max(tested, key=lambda k: (data.measurement_date[k], data.measurement_id[k]))
            out[i, 7] = data.measurement_value[last]
    return out


@pytest.fixture(autouse=True)
def _password(postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, postgres.password)


@pytest.fixture(scope="module")
def cdm(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("omop")
    expected = {}
    with psycopg.connect(postgres.dsn, password=postgres.password, autocommit=True) as conn:
        for i, (name, (persons, seed)) in enumerate(HOSPITALS.items()):
            data = synth.generate(persons, seed, first_id=1 + 10_000 * i)
            synth.write(conn, data, schema=name)
            (folder / f"{name}.toml").write_text(
                f'schema = "{name}"\n' + synth.EXAMPLE_MAPPING, encoding="utf-8"
            )
            expected[name] = _expected(data)
    yield {name: expected[name] for name in HOSPITALS} | {"folder": folder}  # type: ignore[dict-item]


def _source(postgres, cdm, name: str) -> OmopSource:
    return OmopSource(postgres.dsn, cdm["folder"] / f"{name}.toml", password_env=ENV)


def test_the_generator_is_deterministic_and_covers_every_case() -> None:
    a, b = synth.generate(200, 5), synth.generate(200, 5)
    for field in dataclasses.fields(a):
        np.testing.assert_array_equal(getattr(a, field.name), getattr(b, field.name))
    ref = np.datetime64(synth.REFERENCE_DATE)
    assert (a.measurement_date > ref).any() and (a.condition_date > ref).any()
    assert np.isnan(a.measurement_value).any()
    assert not np.array_equal(synth.generate(200, 6).year_of_birth, a.year_of_birth)
    before = a.condition_date <= ref  # concepts under others are in use before the date
    for child in (synth.T2D_COMPLICATION, synth.TYPE_1_DIABETES):
        assert (before & (a.condition_concept == child)).any()
    assert (a.measurement_concept == synth.HBA1C_POINT_OF_CARE).any()
    expected = _expected(a)
    assert (expected[:, 6] > expected[:, 5]).any()  # descendants add persons
    assert not np.array_equal(np.isnan(expected[:, 7]), np.isnan(expected[:, 4]))


def test_concept_ancestor_is_the_closure_of_the_hierarchy() -> None:
    data = synth.generate(50, 1)
    rows = set(
        zip(
            data.ancestor_concept.tolist(),
            data.descendant_concept.tolist(),
            data.levels.tolist(),
            strict=True,
        )
    )
    closure = {(c, c, 0) for c in {*synth.PARENTS, *synth.PARENTS.values()}}
    while True:  # add (grandparent, child, level + 1) until nothing changes
        grown = closure | {
            (synth.PARENTS[a], d, level + 1) for a, d, level in closure if a in synth.PARENTS
        }
        if grown == closure:
            break
        closure = grown
    used = set(data.measurement_concept.tolist()) | set(data.condition_concept.tolist())
    assert closure <= rows
    assert {r for r in rows if r[0] != r[1]} == {r for r in closure if r[0] != r[1]}
    assert {(c, c, 0) for c in used} <= rows  # every concept is its own descendant
    assert (synth.DIABETES_MELLITUS, synth.T2D_COMPLICATION, 2) in rows


def test_rows_read_through_the_mapping_equal_the_python_oracle(postgres, cdm) -> None:
    for name in HOSPITALS:
        src = _source(postgres, cdm, name)
        assert src.columns == tuple(COLUMNS)
        got = src.select(COLUMNS).values
        np.testing.assert_array_equal(np.isnan(got), np.isnan(cdm[name]))
        np.testing.assert_allclose(got, cdm[name], rtol=1e-12)
        assert src.row_count == HOSPITALS[name][0]


@pytest.mark.parametrize(
    "where", [None, "diabetes == 1", "any_diabetes == 1", "gender == 8532 and age >= 40"]
)
def test_stats_over_three_omop_hospitals_equal_numpy(postgres, cdm, where) -> None:
    columns = ["age", "sbp", "hba1c", "hba1c_any"]
    pooled = np.vstack([cdm[name] for name in HOSPITALS])
    keep = np.ones(len(pooled), dtype=bool)
    if where == "diabetes == 1":
        keep = pooled[:, 5] == 1
    elif where == "any_diabetes == 1":
        keep = pooled[:, 6] == 1
    elif where is not None:
        keep = (pooled[:, 2] == synth.FEMALE) & (pooled[:, 1] >= 40)
    rows = pooled[keep][:, [1, 3, 4, 7]]
    complete = rows[~np.isnan(rows).any(axis=1)]
    datas = [_source(postgres, cdm, name).aggregates(columns, where) for name in HOSPITALS]
    assert all(d is not None for d in datas)
    ctxs = [
        dataclasses.replace(ctx, data=d)
        for ctx, d in zip(contexts([np.zeros((0, 4))] * 3, columns), datas, strict=True)
    ]
    try:
        result, _ = run_local(LocalFederation(3), "stats-variance", ctxs)
    finally:
        for d in datas:
            assert d is not None
            d.close()
    assert result["count"] == len(complete) and result["dropped"] == len(rows) - len(complete)
    np.testing.assert_allclose(result["mean"], complete.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(result["variance"], complete.var(axis=0, ddof=1), rtol=1e-4)


def test_open_source_reads_an_omop_mapping_from_the_config(postgres, cdm, tmp_path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(postgres.password, encoding="utf-8")
    mapping = cdm["folder"] / "h2.toml"
    src = open_source(
        DataConfig("postgresql", dsn=postgres.dsn, password_file=secret, omop_mapping=mapping)
    )
    assert isinstance(src, OmopSource) and src.row_count == HOSPITALS["h2"][0]
    assert postgres.password not in repr(src)
    with pytest.raises(ConfigError, match="not both"):
        DataConfig("postgresql", dsn=postgres.dsn, table="person", omop_mapping=mapping)
    with pytest.raises(ConfigError, match="for kind 'postgresql'"):
        DataConfig("csv", path=tmp_path / "x.csv", omop_mapping=mapping)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"columns": {"age": {"source": "age"}}}, "reference_date"),
        ({"reference_date": "2024-13-01", "columns": {"a": {"source": "age"}}}, "reference_date"),
        ({"reference_date": "2024-01-01", "columns": {}}, "columns"),
        ({"reference_date": "2024-01-01", "columns": {"a": {"source": "drug"}}}, "a.source"),
        (
            {"reference_date": "2024-01-01", "columns": {"a": {"source": "measurement"}}},
            "a.concept_id",
        ),
        (
            {
                "reference_date": "2024-01-01",
                "columns": {"a": {"source": "measurement", "concept_id": 1, "value": "max"}},
            },
            "a.value",
        ),
        (
            {"reference_date": "2024-01-01", "columns": {"a": {"source": "condition"}}},
            "a.concept_ids",
        ),
        (
            {"reference_date": "2024-01-01", "columns": {"person_id": {"source": "age"}}},
            "person_id",
        ),
        (
            {"reference_date": "2024-01-01", "columns": {'a"; DROP TABLE person; --': {}}},
            "identifier",
        ),
        (
            {
                "reference_date": "2024-01-01",
                "columns": {"a": {"source": "person", "field": "x FROM person; --"}},
            },
            "a.field",
        ),
        (
            {"reference_date": "2024-01-01", "schema": "cdm; DROP", "columns": {}},
            "schema",
        ),
        (
            {"reference_date": "2024-01-01", "columns": {"a": {"source": "age", "concept": 1}}},
            "a.concept",
        ),
        (
            {
                "reference_date": "2024-01-01",
                "columns": {"a": {"source": "condition", "concept_ids": [1], "descendants": 1}},
            },
            "a.descendants must be true or false",
        ),
        (
            {
                "reference_date": "2024-01-01",
                "columns": {"a": {"source": "age", "descendants": True}},
            },
            "a.descendants is not a key of a age column",
        ),
        (
            {
                "reference_date": "2024-01-01",
                "vocabulary_schema": "vocab; DROP",
                "columns": {"a": {"source": "age"}},
            },
            "vocabulary_schema",
        ),
    ],
)
def test_a_bad_mapping_is_refused_naming_the_key(raw, message: str) -> None:
    with pytest.raises(OmopMappingError, match=message):
        parse_mapping(raw)


def test_a_mapping_the_database_cannot_answer_is_a_clear_error(postgres, cdm, tmp_path) -> None:
    bad_field = tmp_path / "field.toml"
    bad_field.write_text(
        'schema = "h1"\nreference_date = "2024-01-01"\n'
        '[columns.x]\nsource = "person"\nfield = "no_such_field"\n',
        encoding="utf-8",
    )
    with pytest.raises(DataSourceError, match=r"OMOP CDM mapping \(.*42703\)"):
        OmopSource(postgres.dsn, bad_field, password_env=ENV)
    no_schema = tmp_path / "schema.toml"
    no_schema.write_text(
        'schema = "absent"\nreference_date = "2024-01-01"\n[columns.a]\nsource = "age"\n',
        encoding="utf-8",
    )
    with pytest.raises(DataSourceError, match="needs table 'person'"):
        OmopSource(postgres.dsn, no_schema, password_env=ENV)
    with pytest.raises(OmopMappingError, match="cannot read"):
        load_mapping(Path(tmp_path / "missing.toml"))


def test_the_demo_columns_equal_the_oracle() -> None:
    data = synth.generate(300, 9)
    want = _expected(data)
    got = synth.mapped_columns(data)
    for j, name in enumerate(COLUMNS[1:], start=1):
        np.testing.assert_array_equal(got[name], want[:, j], err_msg=name)


def test_a_member_config_keeps_its_omop_mapping(make_federation) -> None:
    from parties.config import load_config, write_config

    member = next(m for m in make_federation(["hospital-a", "hospital-b"]) if m.role == "hospital")
    mapping = member.config_path.parent / "omop.toml"
    data = DataConfig(
        "postgresql",
        dsn="host=db port=5432 dbname=cdm user=reader",
        omop_mapping=mapping,
        password_env="CDM_PASSWORD",
        patient_id="person_id",
    )
    write_config(dataclasses.replace(member, data=data), member.config_path)
    text = member.config_path.read_text()
    assert 'omop_mapping = "omop.toml"' in text  # relative to the config's folder
    assert load_config(member.config_path).data == data


def _descendants_mapping(path: Path, schema: str, vocabulary: str | None = None) -> Path:
    lines = [f'schema = "{schema}"']
    if vocabulary is not None:
        lines.append(f'vocabulary_schema = "{vocabulary}"')
    path.write_text("\n".join(lines) + "\n" + synth.EXAMPLE_MAPPING, encoding="utf-8")
    return path


def test_descendants_without_concept_ancestor_are_a_clear_error(postgres, tmp_path) -> None:
    with psycopg.connect(postgres.dsn, password=postgres.password, autocommit=True) as conn:
        synth.write(conn, synth.generate(50, 31), schema="no_vocab")
        conn.execute("DROP TABLE no_vocab.concept_ancestor")
    mapping = _descendants_mapping(tmp_path / "m.toml", "no_vocab")
    with pytest.raises(
        DataSourceError,
        match=r"column 'any_diabetes' asks for descendants, which need the vocabulary table"
        r" 'concept_ancestor'; schema 'no_vocab' does not hold it",
    ):
        OmopSource(postgres.dsn, mapping, password_env=ENV)
    elsewhere = _descendants_mapping(tmp_path / "v.toml", "no_vocab", vocabulary="absent_vocab")
    with pytest.raises(DataSourceError, match="schema 'absent_vocab' does not hold it"):
        OmopSource(postgres.dsn, elsewhere, password_env=ENV)
    # Without descendants the same database serves the plain columns.
    plain = tmp_path / "plain.toml"
    plain.write_text(
        'schema = "no_vocab"\n' + synth.EXAMPLE_MAPPING.split("[columns.any_diabetes]")[0],
        encoding="utf-8",
    )
    assert OmopSource(postgres.dsn, plain, password_env=ENV).row_count == 50


def test_a_vocabulary_schema_without_level_zero_rows_keeps_the_listed_concepts(
    postgres, tmp_path
) -> None:
    """Descendants come from vocabulary_schema; a concept counts even with no row of its own."""
    data = synth.generate(300, 32)
    with psycopg.connect(postgres.dsn, password=postgres.password, autocommit=True) as conn:
        synth.write(conn, data, schema="cdm_only")
        conn.execute("CREATE SCHEMA IF NOT EXISTS vocab")
        conn.execute("DROP TABLE IF EXISTS vocab.concept_ancestor")
        conn.execute(
            "CREATE TABLE vocab.concept_ancestor AS SELECT * FROM cdm_only.concept_ancestor"
            " WHERE min_levels_of_separation > 0"
        )
        conn.execute("DROP TABLE cdm_only.concept_ancestor")
    mapping = _descendants_mapping(tmp_path / "m.toml", "cdm_only", vocabulary="vocab")
    got = OmopSource(postgres.dsn, mapping, password_env=ENV).select(COLUMNS).values
    want = _expected(data)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12)

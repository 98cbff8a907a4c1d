"""Statistics jobs on three hospital processes whose data live in PostgreSQL tables.

Each hospital's share of the breast cancer rows is written into its own
table of a real server (the ``postgres`` fixture); the oracle is numpy on
the same rows as the launcher split them. The hospitals compute their local
aggregates in the database (their logs say so), apply consent there, and a
connection dropped in the middle of a job aborts it at every party.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from parties.client import Client, JobFailed
from parties.config import DataConfig
from parties.data.consent import record_consent
from parties.ledger.record_store import RecordStore, records_path
from parties.local.launcher import LocalDeployment

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
FEATURES = ["mean_radius", "mean_texture", "mean_area"]


def _connect(server) -> psycopg.Connection:
    return psycopg.connect(server.dsn, password=server.password, autocommit=True)


def _table(hospital: str) -> str:
    return "bc_" + hospital.replace("-", "_")


def _load(server, table: str, header: list[str], rows: list[list[str]]) -> None:
    kinds = {"id": "integer PRIMARY KEY", "diagnosis": "text"}
    with _connect(server) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(h), sql.SQL(kinds.get(h, "double precision")))
            for h in header
        )
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), columns))
        marks = sql.SQL(", ").join(sql.Placeholder() for _ in header)
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(table), marks),
                [
                    [int(c) if h == "id" else c if h == "diagnosis" else float(c)
                     for h, c in zip(header, row, strict=True)]
                    for row in rows
                ],
            )  # fmt: skip


@pytest.fixture(scope="module")
def deployment(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    root = tmp_path_factory.mktemp("pg-e2e")
    dep = LocalDeployment(root, HOSPITALS, name="pg", consent="opt-out")
    secret = root / "db-password"
    secret.write_text(postgres.password + "\n", encoding="utf-8")
    secret.chmod(0o600)
    for h in HOSPITALS:
        _load(postgres, _table(h), dep.header, dep.rows[h])
        dep.set_data(
            h,
            DataConfig(
                "postgresql",
                table=_table(h),
                dsn=postgres.dsn,
                password_file=secret,
                patient_id="id",
            ),
        )
    try:
        dep.start_all()
        yield dep
    finally:
        dep.close()


@pytest.fixture(scope="module")
def client(deployment: LocalDeployment) -> Iterator[Client]:
    c = Client(deployment.members["analyst"])
    yield c
    c.close()


def _column(dep: LocalDeployment, name: str) -> np.ndarray:
    j = dep.header.index(name)
    return np.array([float(r[j]) for h in HOSPITALS for r in dep.rows[h]])


def _in_database(dep: LocalDeployment, job: str) -> bool:
    return all(
        f"job {job}: local aggregates computed in the database" in dep.log_path(h).read_text()
        for h in HOSPITALS
    )


def test_statistics_computed_in_the_databases_equal_numpy(deployment, client) -> None:
    x = np.column_stack([_column(deployment, c) for c in FEATURES])
    result = client.statistics("variance", FEATURES, where="mean_radius > 12")
    assert _in_database(deployment, result["job"])
    kept = x[x[:, 0] > 12]
    assert result["count"] == len(kept)
    np.testing.assert_allclose(result["mean"], kept.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(result["variance"], kept.var(axis=0, ddof=1), rtol=1e-4)

    levels = [["M", "B"]]
    table = client.statistics("crosstab", ["diagnosis"], params={"levels": levels})
    assert _in_database(deployment, table["job"])
    diagnosis = [r[1] for h in HOSPITALS for r in deployment.rows[h]]
    assert table["counts"].tolist() == [diagnosis.count("M"), diagnosis.count("B")]


def test_a_revoked_patient_is_left_out_in_the_database(deployment, client) -> None:
    member = deployment.members["hospital-c"]
    row = deployment.rows["hospital-c"][3]
    with RecordStore(records_path(member)) as store:
        record_consent(member, store, "revoke", row[0], "statistics")
    radius = _column(deployment, "mean_radius")
    result = client.statistics("mean", ["mean_radius"])
    assert _in_database(deployment, result["job"])
    assert result["count"] == len(radius) - 1
    np.testing.assert_allclose(result["sum"], [radius.sum() - float(row[2])], rtol=1e-6)
    # hospital-c's own log says consent left one row out; the analyst's result does not
    rows = len(deployment.rows["hospital-c"])
    assert (
        f"job {result['job']}: consent excluded 1 of {rows} selected rows (consent mode opt-out:"
        in deployment.log_path("hospital-c").read_text()
    )


def test_a_dropped_database_connection_aborts_the_job_cleanly(postgres, deployment, client) -> None:
    """hospital-b's query waits on a lock; its backend is terminated; every party stops."""
    table = _table("hospital-b")
    holder = _connect(postgres)
    holder.autocommit = False
    holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
    failure: list[BaseException] = []

    def submit() -> None:
        try:
            client.statistics("mean", ["mean_radius"], deadline_s=30)
        except BaseException as exc:  # checked below
            failure.append(exc)

    job = threading.Thread(target=submit)
    job.start()
    try:
        with _connect(postgres) as conn:
            for _ in range(200):  # until hospital-b's read waits on the lock
                found = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ).fetchall()
                if found:
                    break
                time.sleep(0.05)
            assert found, "hospital-b never queried its table"
        job.join(timeout=60)
    finally:
        holder.rollback()
        holder.close()
    assert not job.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], JobFailed)
    assert failure[0].kind == "local-data"
    log = deployment.log_path("hospital-b").read_text()
    assert "SQLSTATE 57P01" in log and postgres.password not in log
    # the node keeps serving: the next job over the same tables succeeds
    again = client.statistics("count", ["mean_radius"])
    assert again["count"] == len(_column(deployment, "mean_radius")) - 1  # the revoked one


def test_the_config_never_holds_the_password(deployment: LocalDeployment, postgres) -> None:
    for h in HOSPITALS:
        member = deployment.members[h]
        text = Path(member.config_path).read_text()
        assert postgres.password not in text
        assert dataclasses.asdict(member.data)["password_file"] is not None
        assert postgres.password not in deployment.log_path(h).read_text()

"""``make demo-omop``: three hospitals whose data live in an OMOP CDM in PostgreSQL.

Starts a throwaway PostgreSQL server from the binaries on this machine,
writes each hospital a synthetic OMOP CDM (``parties.local.omop_synthetic``,
no real patient) in a schema of its own and a mapping file, points each
hospital's ``[data]`` at it (``kind = "postgresql"``, ``omop_mapping``, the
password in a file, consent keyed by ``person_id`` under the federation's
``opt-out`` mode), starts the federation's processes, and submits
statistics jobs whose local aggregates each hospital computes in its
database. Every secure result is printed beside numpy's on the pooled
columns worked out in Python from the generated rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import psycopg

from parties.client import Client
from parties.config import DataConfig
from parties.local import omop_synthetic, postgres_server
from parties.local.launcher import LocalDeployment

HOSPITALS = {"hospital-a": 900, "hospital-b": 700, "hospital-c": 1100}
COLUMNS = ["age", "sbp", "hba1c"]


def main() -> None:
    if postgres_server.binaries() is None:
        raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl): install the postgresql package")
    with tempfile.TemporaryDirectory(prefix="smpc-omop-demo-") as folder:
        root = Path(folder)
        password = omop_synthetic.demo_password()
        with postgres_server.running(password) as server:
            print(f"PostgreSQL on 127.0.0.1:{server.port}; writing synthetic OMOP CDMs ...")
            pooled: dict[str, list[np.ndarray]] = {
                c: [] for c in [*COLUMNS, "diabetes", "any_diabetes"]
            }
            secret = root / "db-password"
            secret.write_text(password, encoding="utf-8")
            secret.chmod(0o600)
            dep = LocalDeployment(
                root / "fed", tuple(HOSPITALS), name="omop-demo", consent="opt-out"
            )
            with psycopg.connect(server.dsn, password=password, autocommit=True) as conn:
                for i, (name, persons) in enumerate(HOSPITALS.items()):
                    schema = name.replace("-", "_")
                    data = omop_synthetic.generate(persons, seed=100 + i, first_id=1 + 10**6 * i)
                    omop_synthetic.write(conn, data, schema=schema)
                    for column, values in omop_synthetic.mapped_columns(data).items():
                        if column in pooled:
                            pooled[column].append(values)
                    mapping = root / f"{name}-omop.toml"
                    mapping.write_text(
                        f'schema = "{schema}"\n' + omop_synthetic.EXAMPLE_MAPPING, encoding="utf-8"
                    )
                    dep.set_data(
                        name,
                        DataConfig(
                            "postgresql",
                            dsn=server.dsn,
                            password_file=secret,
                            omop_mapping=mapping,
                            patient_id="person_id",
                        ),
                    )
            with dep:
                client = Client(dep.members["analyst"])
                try:
                    _jobs(client, {c: np.concatenate(v) for c, v in pooled.items()})
                finally:
                    client.close()


def _jobs(client: Client, pooled: dict[str, np.ndarray]) -> None:
    x = np.column_stack([pooled[c] for c in COLUMNS])
    for where, keep in (
        (None, np.ones(len(x), dtype=bool)),
        ("diabetes == 1", pooled["diabetes"] == 1),
        ("any_diabetes == 1", pooled["any_diabetes"] == 1),  # concept 201820 and descendants
    ):
        label = "all persons" if where is None else where
        print(f"  job: mean and stdev of {', '.join(COLUMNS)} over {label} ...", flush=True)
        result = client.statistics("stdev", COLUMNS, where=where)
        rows = x[keep]
        rows = rows[~np.isnan(rows).any(axis=1)]
        print(f"    {result['seconds'] * 1e3:.0f} ms; N = {result['count']} (numpy {len(rows)})")
        for j, column in enumerate(COLUMNS):
            print(
                f"    {column:6s} mean {result['mean'][j]:9.4f} (numpy {rows[:, j].mean():9.4f})"
                f"  stdev {result['stdev'][j]:8.4f} (numpy {rows[:, j].std(ddof=1):8.4f})"
            )


if __name__ == "__main__":
    main()

"""A whole federation on this machine: dealer and hospital processes on loopback.

``LocalDeployment`` writes a fresh federation (CA, certificates, configs),
gives every hospital its own CSV with a disjoint share of a data set, and
starts each member as its own ``smpc dealer`` / ``smpc party`` process, each on
its own loopback address. The demo and the process-level tests use it; a
hospital runs the same commands against its own config.
"""

from __future__ import annotations

import csv
import dataclasses
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from parties.config import DataConfig, MemberConfig, load_config, write_config
from parties.federation import init_federation

DATA_PATH = Path(__file__).resolve().parent / "data" / "breast_cancer.csv"


class LocalDeployment:
    """A federation folder, per-hospital data files, and the member processes."""

    def __init__(
        self,
        root: Path,
        hospitals: Sequence[str],
        *,
        data: Path = DATA_PATH,
        analysts: Sequence[str] = ("analyst",),
        model_owners: Sequence[str] = (),
        name: str = "local",
        consent: str = "opt-in",
        patient_id: str | None = None,
    ) -> None:
        """``patient_id`` names the column every hospital keys consent by (none: no consent)."""
        self.root = Path(root)
        members = init_federation(
            name, hospitals, analysts, model_owners, self.root / "fed", base_port=0, consent=consent
        )
        self.members: dict[str, MemberConfig] = {m.name: m for m in members}
        with data.open(newline="") as f:
            table = list(csv.reader(f))
        self.header, body = table[0], table[1:]
        # Row i (id i + 1) goes to hospital i mod n: disjoint, and every hospital is mixed.
        self.rows: dict[str, list[list[str]]] = {
            h: body[i :: len(hospitals)] for i, h in enumerate(hospitals)
        }
        for hospital in hospitals:
            path = self.root / f"{hospital}.csv"
            with path.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(self.header)
                writer.writerows(self.rows[hospital])
            self.set_data(hospital, DataConfig("csv", path, patient_id=patient_id))
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def set_data(self, name: str, data: DataConfig) -> None:
        """Point a member at its inputs (a data file, or a model owner's model file)."""
        member = dataclasses.replace(self.members[name], data=data)
        write_config(member, member.config_path)
        self.members[name] = load_config(member.config_path)

    def log_path(self, name: str) -> Path:
        """The log file of member ``name``'s process (its standard error)."""
        return self.root / f"{name}.log"

    def start(self, name: str, timeout: float = 60.0) -> None:
        """Start one member's process and wait until it serves."""
        self._ready(name, self._launch(name))

    def _launch(self, name: str) -> subprocess.Popen[str]:
        member = self.members[name]
        command = "dealer" if member.role == "dealer" else "party"
        with self.log_path(name).open("a") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "parties.cli", command, "--config", str(member.config_path)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def _ready(self, name: str, proc: subprocess.Popen[str]) -> None:
        """Wait for the process's "ready" line (it loads its kernels first)."""
        line = proc.stdout.readline() if proc.stdout is not None else ""
        if not line.startswith("ready"):
            proc.kill()
            raise RuntimeError(f"{name} did not start; see {self.log_path(name)}")
        self.procs[name] = proc

    def start_all(self) -> None:
        """The dealer first, then every computing party at once.

        The parties start together so that they meet on the data plane within
        moments of each other, not one warm-up after another.
        """
        roles = {name: member.role for name, member in self.members.items()}
        for name, role in roles.items():
            if role == "dealer" and name not in self.procs:
                self.start(name)
        launched = {
            name: self._launch(name)
            for name, role in roles.items()
            if role in ("hospital", "model-owner") and name not in self.procs
        }
        try:
            for name, proc in launched.items():
                self._ready(name, proc)
        except RuntimeError:
            for name, proc in launched.items():
                if name not in self.procs:
                    proc.kill()
                    proc.wait()
            raise

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal one member's process and wait for it to exit; returns its exit status."""
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    def close(self) -> None:
        """Stop every process still running (SIGTERM, then SIGKILL)."""
        for name, proc in list(self.procs.items()):
            try:
                self.stop(name)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> LocalDeployment:
        self.start_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Fixtures: a throwaway federation on free loopback ports, and jobs over real meshes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parties.config import MemberConfig
from parties.federation import init_federation
from parties.local import postgres_server
from parties.local.launcher import LocalDeployment
from parties.service.dataplane import DataPlane
from parties.service.socket_transport import SocketTransport
from smpc.preprocessing import Dealer
from smpc.runtime import Runtime, dry_run
from smpc.transcript import Transcript


def federation(tmp: Path, hospitals: Sequence[str], name: str = "testfed") -> list[MemberConfig]:
    """A new federation whose members listen on distinct loopback hosts and free ports."""
    return init_federation(name, hospitals, [], [], tmp / name, base_port=0)


@contextlib.contextmanager
def data_planes(members: Sequence[MemberConfig], **kwargs: Any) -> Iterator[list[DataPlane]]:
    """Started, connected data planes of ``members`` (in this process; ports found by name)."""
    ports: dict[str, int] = {}
    hosts = {m.name: m.address.rpartition(":")[0] for m in members}

    def locate(peer: str) -> tuple[str, int]:
        if peer not in ports:
            raise OSError(f"{peer} is not listening")
        return hosts[peer], ports[peer]

    planes = [DataPlane(m, locate=locate, **kwargs) for m in members]
    try:
        for plane in planes:
            ports[plane.name] = plane.start().port
        yield planes
    finally:
        for plane in planes:
            plane.stop()


def run_over_meshes(
    meshes: Sequence[DataPlane], fn: Callable[..., Any], inputs: Sequence[Any], job: str
) -> tuple[list[Any], list[SocketTransport]]:
    """Run ``fn(rt, inputs[i])`` at each data plane's party in threads; a test-local dealer."""
    names = sorted(m.name for m in meshes)
    by_name = {m.name: (m, x) for m, x in zip(meshes, inputs, strict=True)}
    plan = dry_run(fn, len(names), by_name[names[0]][1]).plan
    sources = Dealer("testfed", job, len(names), plan).local_sources()
    results: list[Any] = [None] * len(names)
    errors: list[BaseException | None] = [None] * len(names)
    transports: list[SocketTransport] = []
    for name in names:
        mesh = by_name[name][0]
        index = names.index(name)
        transcript = Transcript(job, index, len(names))
        transports.append(SocketTransport(mesh, job, names, transcript=transcript, deadline=None))

    def party(i: int) -> None:
        try:
            results[i] = fn(Runtime(transports[i], sources[i]), by_name[names[i]][1])
        except BaseException as exc:
            errors[i] = exc

    threads = [threading.Thread(target=party, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for e in errors:
        if e is not None:
            raise e
    return results, transports


@pytest.fixture
def make_federation(tmp_path: Path) -> Callable[..., list[MemberConfig]]:
    """Build a federation of the given hospitals under the test's temporary folder."""
    return lambda hospitals, name="testfed": federation(tmp_path, hospitals, name)


@pytest.fixture
def linked_planes() -> Callable[..., contextlib.AbstractContextManager[list[DataPlane]]]:
    """Start the given members' data planes in this process: ``with linked_planes(members)``."""
    return data_planes


@pytest.fixture
def over_meshes() -> Callable[..., tuple[list[Any], list[SocketTransport]]]:
    """Run a protocol function on real data planes, one thread per party."""
    return run_over_meshes


class RunningFederation(LocalDeployment):
    """A local deployment of the breast cancer data, with a plaintext oracle for tests."""

    def __init__(self, root: Path, hospitals: Sequence[str]) -> None:
        super().__init__(root, hospitals, name="e2e")

    def column(self, name: str) -> np.ndarray:
        """A numeric column over every hospital's rows (the plaintext oracle)."""
        j = self.header.index(name)
        return np.array([float(r[j]) for rows in self.rows.values() for r in rows])


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):
    """Three hospital processes and a dealer process, shared by a module's tests."""
    fed = RunningFederation(
        tmp_path_factory.mktemp("e2e"), ["hospital-a", "hospital-b", "hospital-c"]
    )
    try:
        fed.start_all()
        yield fed
    finally:
        fed.close()


@pytest.fixture(scope="module")
def federation_files(tmp_path_factory: pytest.TempPathFactory) -> RunningFederation:
    """A federation's files and each hospital's share of the data, with no process started."""
    return RunningFederation(
        tmp_path_factory.mktemp("files"), ["hospital-a", "hospital-b", "hospital-c"]
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.Server]:
    """A running PostgreSQL server; its tests are skipped where PostgreSQL is not installed."""
    if postgres_server.binaries() is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed; .ci/run installs them"
        )
    with postgres_server.running("pg-test-password-5120") as server:
        yield server

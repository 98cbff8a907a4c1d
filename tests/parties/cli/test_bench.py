"""``smpc bench`` end to end on the smallest sizes: the JSON it writes, the table, the errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from parties.bench import measure, targets
from parties.bench.measure import Case, Result, memory_runner
from parties.bench.operations import OPERATIONS, Operation, ResultMismatch
from parties.cli.main import main

# Every field a result carries in the JSON: the dataclass's, with times renamed.
RENAMED = {"p50": "p50_seconds", "p99": "p99_seconds", "min": "min_seconds", "max": "max_seconds"}
FIELDS = {RENAMED.get(f.name, f.name) for f in dataclasses.fields(Result)} | {
    "per_second",
    "ratio",
}


def _run(tmp_path: Path, *argv: str) -> tuple[int, dict]:
    out = tmp_path / "bench.json"
    status = main(["bench", "--json", str(out), "--no-plot", *argv])
    return status, json.loads(out.read_text()) if out.exists() else {}


def _check_sane(record: dict) -> None:
    assert set(record) >= FIELDS, FIELDS - set(record)
    op = OPERATIONS[record["operation"]]
    assert record["rounds"] == record["documented_rounds"] == op.rounds
    assert 0 < record["min_seconds"] <= record["p50_seconds"] <= record["p99_seconds"]
    assert record["p99_seconds"] <= record["max_seconds"]
    assert record["plaintext_seconds"] > 0
    assert record["ratio"] == pytest.approx(record["p50_seconds"] / record["plaintext_seconds"])
    assert record["per_second"] == pytest.approx(record["elements"] / record["p50_seconds"])
    assert len(record["samples"]) == record["repetitions"] > 0
    if op.rounds > 0:
        assert record["bytes_per_party"] > 0
    else:
        assert record["bytes_per_party"] == 0


def test_bench_in_memory_smallest_size_every_operation(tmp_path: Path, capsys) -> None:
    status, doc = _run(tmp_path, "--transport", "memory", "--sizes", "1", "--repetitions", "20")
    assert status == 0
    records = doc["results"]
    assert [r["operation"] for r in records] == list(OPERATIONS)
    for record in records:
        _check_sane(record)
        assert record["transport"] == "memory" and record["wire_bytes_per_party"] is None
        assert record["elements"] == OPERATIONS[record["operation"]].min_size
        assert record["repetitions"] == 20
    assert doc["machine"]["cores"] >= 1 and doc["options"]["sizes"] == [1]
    out, err = capsys.readouterr()
    assert "operation" in out.splitlines()[0] and "ratio" in out.splitlines()[0]
    assert f"[{len(OPERATIONS)}/{len(OPERATIONS)}] {list(OPERATIONS)[-1]}" in err


@pytest.mark.process
def test_bench_over_tls_processes_reports_wire_bytes(tmp_path: Path) -> None:
    status, doc = _run(
        tmp_path, "--transport", "tls", "--ops", "mul", "--sizes", "1", "--repetitions", "20"
    )
    assert status == 0
    (record,) = doc["results"]
    _check_sane(record)
    assert record["transport"] == "tls"
    # frames carry headers besides the payload
    assert record["wire_bytes_per_party"] > record["bytes_per_party"]


def test_plot_or_a_note(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--json", str(out), "--transport", "memory", "--ops", "add",
                 "--sizes", "1", "--repetitions", "10"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no plot: matplotlib is not installed" in printed
    else:
        assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_operation_is_named(tmp_path: Path, capsys) -> None:
    status, _ = _run(tmp_path, "--ops", "mul,division")
    assert status == 2
    err = capsys.readouterr().err
    assert "unknown operation division" in err and "sigmoid" in err


def test_bad_size_is_a_usage_error(tmp_path: Path, capsys) -> None:
    status, doc = _run(tmp_path, "--sizes", "1,ten")
    assert status == 2 and doc == {}
    assert "'ten' is not a whole number" in capsys.readouterr().err


def test_check_targets_exits_1_on_a_miss(tmp_path: Path, capsys, monkeypatch) -> None:
    impossible = targets.Target("add of 1 in no time", {"operation": "add", "elements": 1},
                                "p50_ms", 1e-9)  # fmt: skip
    monkeypatch.setattr(targets, "TARGETS", (impossible,))
    status, doc = _run(
        tmp_path, "--transport", "memory", "--ops", "mul", "--sizes", "1", "--repetitions", "5",
        "--check-targets",
    )  # fmt: skip
    assert status == 1
    # the target's own case was added to the run
    assert {r["operation"] for r in doc["results"]} == {"mul", "add"}
    assert doc["targets"][0]["met"] is False
    assert "MISSED" in capsys.readouterr().out


def test_check_targets_exits_0_when_met(tmp_path: Path, monkeypatch) -> None:
    easy = targets.Target("add of 1 within a minute", {"operation": "add", "elements": 1},
                          "p50_ms", 60_000.0)  # fmt: skip
    monkeypatch.setattr(targets, "TARGETS", (easy,))
    status, doc = _run(
        tmp_path, "--transport", "memory", "--ops", "add", "--sizes", "1", "--repetitions", "5",
        "--check-targets",
    )  # fmt: skip
    assert status == 0 and doc["targets"][0]["met"] is True


def test_a_wrong_secure_result_names_operation_size_and_transport(monkeypatch) -> None:
    honest = OPERATIONS["mul"]
    lying = Operation(**{**dataclasses.asdict(honest), "plaintext": lambda d: d["x"] * d["y"] + 1})
    monkeypatch.setitem(OPERATIONS, "mul", lying)
    with pytest.raises(ResultMismatch, match=r"mul 1e3 on memory: the secure result differs"):
        measure.measure(Case("mul", 1000, "memory"), memory_runner, repetitions=2)


def _plan(*argv: str) -> tuple[list[Case], list[Case], list[Case]]:
    from parties.cli.bench import plan_cases
    from parties.cli.main import build_parser

    return plan_cases(build_parser().parse_args(["bench", *argv]))


def test_default_subset_memory_to_1e6_tls_to_1e4_with_caps() -> None:
    cases, replaced, left_out = _plan()
    memory = {(c.operation, c.size) for c in cases if c.transport == "memory"}
    over_tls = {(c.operation, c.size) for c in cases if c.transport == "tls"}
    order = [c.transport for c in cases]
    assert order == sorted(order, key=("memory", "tls").index)  # memory first
    for name, op in OPERATIONS.items():
        top = 10**6 if op.default_max is None else op.default_max
        assert {s for n, s in memory if n == name} == {op.min_size, 10**3, top}
        tls_sizes = {op.min_size, 10**3, 10**4}
        expected = tls_sizes if "tls" in op.default_transports else set()
        assert {s for n, s in over_tls if n == name} == expected
    assert {c.operation for c in replaced} == {
        n for n, op in OPERATIONS.items() if op.default_max is not None and op.default_max < 10**6
    }
    assert {c.operation for c in left_out} == {
        n for n, op in OPERATIONS.items() if "tls" not in op.default_transports
    }
    # naming an operation runs it on every transport
    named, _, none_left = _plan("--ops", "sqrt", "--sizes", "1")
    assert {c.transport for c in named} == {"memory", "tls"} and not none_left


def test_full_adds_1e6_over_tls_and_lifts_caps() -> None:
    cases, replaced, left_out = _plan("--full")
    assert not replaced and not left_out
    for name in OPERATIONS:
        assert Case(name, 10**6, "tls") in cases and Case(name, 10**6, "memory") in cases


def test_check_targets_adds_the_cases_the_targets_name() -> None:
    cases, _, _ = _plan("--ops", "add", "--sizes", "1", "--check-targets")
    assert Case("mul", 10**6, "memory", transcripts=False) in cases
    assert Case("matmul", 256 * 256, "memory", transcripts=False) in cases
    assert Case("mul", 1, "tls") in cases and Case("mul", 10**6, "tls") in cases
    assert Case("ltz", 10**6, "memory") in cases and Case("sigmoid", 10**6, "memory") in cases


def test_a_failing_case_is_reported_and_the_others_are_kept(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    honest = OPERATIONS["mul"]
    lying = Operation(**{**dataclasses.asdict(honest), "plaintext": lambda d: d["x"] * d["y"] + 1})
    monkeypatch.setitem(OPERATIONS, "mul", lying)
    status, doc = _run(
        tmp_path, "--transport", "memory", "--ops", "add,mul", "--sizes", "1",
        "--repetitions", "5",
    )  # fmt: skip
    assert status == 1
    assert [r["operation"] for r in doc["results"]] == ["add"]
    (failure,) = doc["failures"]
    assert failure["case"] == "mul 1 on memory" and "differs from numpy" in failure["error"]
    assert "FAILED mul 1 on memory" in capsys.readouterr().err

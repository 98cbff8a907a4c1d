"""The analyst's client: jobs built from the protocols' parameters, checked before signing."""

from __future__ import annotations

import numpy as np
import pytest

from parties import client as client_module
from parties.client import Client
from parties.config import MemberConfig
from parties.federation import init_federation
from protocols import logistic, statistics, vertical
from protocols.context import JobParamsError
from protocols.disclosure import StatisticsParamsError
from protocols.tables import HistogramParams

HOSPITALS = ("hospital-a", "hospital-b")


@pytest.fixture(scope="module")
def analyst(tmp_path_factory: pytest.TempPathFactory) -> MemberConfig:
    members = init_federation(
        "clientfed", HOSPITALS, ["analyst"], ["owner"], tmp_path_factory.mktemp("fed"), 0
    )
    return next(m for m in members if m.name == "analyst")


@pytest.fixture
def client(analyst, monkeypatch: pytest.MonkeyPatch) -> Client:
    """A client that must not sign (or send) anything: every job here fails before that."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the job was signed")

    monkeypatch.setattr(client_module, "sign_job", refuse)
    return Client(analyst)


@pytest.mark.parametrize(
    ("statistic", "columns", "where", "params", "field", "says"),
    [
        ("histogram", ["age"], None, None, "params.edges", "must list at least two finite"),
        ("histogram", ["age"], None, {"edges": [3, 1]}, "params.edges", "must be strictly"),
        ("histogram", ["age", "bp"], None, {"edges": [0, 1]}, "columns", "must name exactly one"),
        ("crosstab", ["sex"], None, None, "params.levels", "must give one list of levels"),
        ("crosstab", ["sex", "dx"], None, {"levels": [["F"]]}, "params.levels", "must give one"),
        ("median", ["age"], None, {"bits": 40}, "params.bits", "must be an integer from 1 to 32"),
        ("quantiles", ["age"], None, {"probabilities": [1.5]}, "params.probabilities", "must"),
        ("mean", ["age"], "age >", None, "where", "is not a valid filter: malformed filter"),
        ("mean", ["dx"], 'dx == "M"', None, "columns", "include 'dx', which the filter"),
        ("count", ["age", "dx"], "dx != 'B'", None, "columns", "include 'dx'"),
        ("mean", ["age"], None, {"edges": [1, 2]}, "params.edges", "is not a parameter"),
    ],
)
def test_a_mistake_the_job_shows_fails_before_signing(
    client, statistic, columns, where, params, field, says
) -> None:
    with pytest.raises(JobParamsError) as caught:
        client.statistics(statistic, columns, where=where, params=params)
    assert caught.value.field == field
    assert caught.value.reason.startswith(says), caught.value.reason


def test_a_text_column_is_fine_where_the_protocol_reads_text(client) -> None:
    spec = statistics.statistic_protocol("crosstab")
    job = client.job(
        spec.name,
        spec.version,
        inputs={h: (["dx"], 'dx != "other"') for h in HOSPITALS},
        params={"levels": [["M", "B"]]},
    )
    assert job.params == {"levels": [["M", "B"]]}


def test_an_unknown_statistic_names_the_choices(client) -> None:
    with pytest.raises(StatisticsParamsError, match=r"unknown statistic 'mode'; choose one of .*"):
        client.statistics("mode", ["age"])


def test_jobs_carry_the_protocols_parameters_as_checked(analyst) -> None:
    client = Client(analyst)
    spec = statistics.protocol("stats-histogram")
    job = client.job(
        spec.name,
        spec.version,
        inputs={h: ["age"] for h in HOSPITALS},
        params=HistogramParams(edges=(np.int64(0), 10, 20.5)),
    )
    assert job.params == {"edges": [0.0, 10.0, 20.5]}
    assert HistogramParams.from_mapping(job.params) == HistogramParams(edges=(0, 10, 20.5))


def test_inference_jobs_are_built_from_the_logistic_parameters(analyst) -> None:
    client = Client(analyst)
    job = client.inference_job(
        "owner", ["a", "b"], {"hospital-b": 7, "hospital-a": 5}, label_column="y"
    )
    assert (job.protocol, job.protocol_version) == (logistic.ROW_SPLIT.name, "4")
    assert logistic.RowInferenceParams.from_mapping(job.params).rows == {
        "hospital-b": 7,
        "hospital-a": 5,
    }
    assert job.parties == ("hospital-a", "hospital-b", "owner")
    assert job.inputs["hospital-a"].columns == ("a", "b", "y")
    assert job.outputs == {"labels": HOSPITALS, "metrics": ("analyst",)}
    columns = client.column_inference_job(
        "owner",
        ["a", "b"],
        {"hospital-a": ["a"], "hospital-b": ["b"]},
        "sid",
        [np.int64(4), 9],
        ["hospital-a"],
    )
    assert columns.protocol == logistic.COLUMN_SPLIT.name
    assert columns.params["patients"] == [4, 9]
    assert columns.inputs["hospital-b"].columns == ("sid", "b")
    with pytest.raises(JobParamsError, match=r"outputs\.labels must be parties of the job"):
        client.column_inference_job(
            "owner", ["a"], {"hospital-a": ["a"]}, "sid", [1], ["hospital-b"]
        )
    with pytest.raises(JobParamsError, match=r"params\.holders must hold every model feature"):
        client.column_inference_job("owner", ["a", "b"], {"hospital-a": ["a"]}, "sid", [1], [])


def test_column_split_jobs_are_built_from_the_vertical_parameters(analyst) -> None:
    client = Client(analyst)
    params = vertical.VerticalParams(
        columns={"hospital-a": ("age",), "hospital-b": ("cost",)}, key="pid", ids=(3, 1)
    )
    assert params.inputs() == {"hospital-a": ["pid", "age"], "hospital-b": ["pid", "cost"]}
    spec = statistics.statistic_protocol("correlation", column_split=True)
    job = client.job(spec.name, spec.version, inputs=params.inputs(), params=params)
    assert vertical.VerticalParams.from_mapping(job.params) == params
    with pytest.raises(StatisticsParamsError, match=r"columns of hospital-b must include"):
        client.job(
            spec.name, spec.version, inputs={h: ["pid", "age"] for h in HOSPITALS}, params=params
        )


def test_dropped_rows_are_zero_when_the_filter_keeps_only_complete_rows() -> None:
    gated_zero = {"count": np.array([40]), "dropped": np.array([0])}
    assert statistics.describe("count", gated_zero)["dropped"] is None  # fewer than m: unknown
    assert statistics.describe("count", gated_zero, complete=True)["dropped"] == 0

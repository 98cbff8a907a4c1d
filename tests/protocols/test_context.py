"""Protocol parameters: read from and written to a job, checked in one place, naming the field."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from protocols.context import JobParamsError, Params, ProtocolSpec
from protocols.disclosure import StatisticsParams, StatisticsParamsError
from protocols.order import QuantileParams
from protocols.probe import ProbeParams
from protocols.registry import installed
from protocols.statistics import job_params
from protocols.tables import CrosstabParams, HistogramParams
from protocols.vertical import VerticalParams


def test_protocol_modules_do_not_import_the_registry() -> None:
    code = (
        "import sys, protocols.statistics, protocols.logistic, protocols.probe; "
        "print('protocols.registry' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    "params",
    [
        HistogramParams(edges=(0.0, 10.0, 20.0)),
        CrosstabParams(levels=(("M", "B"), ("F", "X"))),
        QuantileParams(probabilities=(0.1, 0.9), range=(0.0, 64.0), bits=16),
        VerticalParams(columns={"a": ("x",), "b": ("y", "z")}, key="id", ids=(3, 1, 2)),
        VerticalParams(columns={"a": ("x",), "b": ("y",)}, rows=40),
        ProbeParams(products=7),
        StatisticsParams(),
    ],
)
def test_params_survive_the_job_mapping(params) -> None:
    mapping = params.to_mapping()
    assert type(params).from_mapping(mapping) == params
    assert all(value is not None for value in mapping.values())  # unset fields are left out


def test_every_installed_protocol_refuses_a_parameter_it_does_not_take() -> None:
    for spec in installed().values():
        assert isinstance(spec, ProtocolSpec) and issubclass(spec.params, Params), spec.name
        with pytest.raises(JobParamsError, match=r"params\.colour is not a parameter"):
            spec.params.from_mapping({"colour": "red"})


def test_numbers_are_normalised_and_numpy_scalars_accepted() -> None:
    params = HistogramParams.from_mapping({"edges": [np.int64(1), 2, np.float64(3.5)]})
    assert params.edges == (1.0, 2.0, 3.5)
    assert QuantileParams.from_mapping({"bits": np.int64(12)}).bits == 12


@pytest.mark.parametrize(
    ("kind", "given", "field", "reason"),
    [
        (HistogramParams, {}, "params.edges", "must list at least two finite bin edges"),
        (HistogramParams, {"edges": [1, float("nan")]}, "params.edges", "must list at least"),
        (HistogramParams, {"edges": [3, 1]}, "params.edges", "must be strictly increasing"),
        (HistogramParams, {"edge": [1, 2]}, "params.edge", "is not a parameter"),
        (CrosstabParams, {}, "params.levels", "must give one list of levels per column"),
        (
            CrosstabParams,
            {"levels": [["M", "M"]]},
            "params.levels",
            "for column 1 must be distinct",
        ),
        (CrosstabParams, {"levels": [[1, 2]]}, "params.levels", "for column 1 must be text"),
        (QuantileParams, {"bits": 2.5}, "params.bits", "must be an integer from 1 to 32"),
        (QuantileParams, {"probabilities": []}, "params.probabilities", "must list at least"),
        (VerticalParams, {"columns": {"a": ["x"]}}, "params.rows", "(or params.key and"),
        (VerticalParams, {"columns": {"a": ["x"]}, "ids": [1]}, "params.key", "must name the"),
        (ProbeParams, {"products": -1}, "params.products", "must be an integer from 0"),
    ],
)
def test_a_bad_parameter_is_an_error_naming_its_field(kind, given, field, reason) -> None:
    with pytest.raises(JobParamsError) as caught:
        kind.from_mapping(given)
    assert caught.value.field == field
    assert caught.value.reason.startswith(reason)
    assert str(caught.value) == f"{field} {caught.value.reason}"
    if issubclass(kind, StatisticsParams):  # statistics keep their statistics.StatisticsError
        assert isinstance(caught.value, StatisticsParamsError)


def test_the_field_can_be_renamed_for_the_command_line() -> None:
    with pytest.raises(JobParamsError) as caught:
        HistogramParams.from_mapping({})
    flags = {"params.edges": "--edges"}
    assert caught.value.named(flags) == "--edges must list at least two finite bin edges"
    assert JobParamsError("plain").named(flags) == "plain"
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (type(copy), copy.field, str(copy)) == (
        StatisticsParamsError,
        "params.edges",
        str(caught.value),
    )


def test_params_must_be_a_mapping_or_the_protocols_own_class() -> None:
    edges = HistogramParams(edges=(0.0, 1.0))
    assert HistogramParams.from_mapping(edges) is edges
    with pytest.raises(JobParamsError, match="params must be HistogramParams, not QuantileParams"):
        HistogramParams.from_mapping(QuantileParams())
    with pytest.raises(JobParamsError, match="params must be an object of named parameters"):
        HistogramParams.from_mapping([0, 1])


def test_columns_are_checked_against_the_statistic() -> None:
    with pytest.raises(StatisticsParamsError, match="columns must name exactly one column"):
        HistogramParams(edges=(0.0, 1.0)).check_inputs(
            ("a", "b"), {"a": ("x", "y"), "b": ("x", "y")}
        )
    levels = CrosstabParams(levels=(("M", "B"),))
    with pytest.raises(StatisticsParamsError, match=r"params\.levels must give one list of levels"):
        levels.check_inputs(("a",), {"a": ("s", "d")})
    with pytest.raises(StatisticsParamsError, match="same columns; b selects other ones"):
        StatisticsParams().check_inputs(("a", "b", "c"), {"a": ("x",), "b": ("y",), "c": ("x",)})
    levels.check_inputs(("a", "b"), {"a": ("s",), "b": ("s",)})  # fits: no error


def test_median_asks_for_the_half_quantile_unless_told_otherwise() -> None:
    assert job_params("median", None) == QuantileParams(probabilities=(0.5,))
    assert job_params("median", {"bits": 8}).probabilities == (0.5,)
    assert job_params("quantiles", {}).probabilities == (0.25, 0.5, 0.75)
    with pytest.raises(StatisticsParamsError, match="unknown statistic 'mode'; choose one of"):
        job_params("mode")

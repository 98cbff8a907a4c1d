PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export NUMBA_NUM_THREADS := 1
export OPENBLAS_NUM_THREADS := 1

.PHONY: install test test-all demo demo-omop bench bench-suites lint format clean proto

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m smpc.warm
	$(BIN)/python -m parties.data.csv_kernels
	touch $(STAMP)

install: $(STAMP)

# pytest exits 5 when it collected no tests: that is a failure here too.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$status

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m parties.local.demo

demo-omop: $(STAMP)
	$(BIN)/python -m parties.local.demo_omop

# Per-operation latency, in memory and between 3 party processes (table, JSON, PNG).
bench: $(STAMP)
	$(BIN)/smpc bench

# The pytest-benchmark suites (phases, transcripts on and off) and their table.
bench-suites: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-only -q \
		--benchmark-json=bench-results/engine-inmemory.json
	$(BIN)/python -m benchmarks.report --json bench-results/engine-inmemory.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy smpc protocols parties

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Regenerate the gRPC code from parties/service/wire.proto with the pinned grpcio-tools;
# the output needs the protobuf runtime pinned in pyproject.toml.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. parties/service/wire.proto

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks

# Two commands for a fresh machine: `make run` (set up, then the main job on built-in
# defaults) and `make test` (set up, then the test suite). Both create .venv as needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test benchmarks clean

setup: $(STAMP)

$(STAMP): setup.py pyproject.toml
	@bash tools/system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $(STAMP)

run: setup
	mkdir -p out
	rm -rf out/pixel1_40ms
	$(BIN)/edgetailor specialize --device pixel1 --budget-ms 40 --out out/pixel1_40ms

test: setup
	@bash tools/postgres-for-tests.sh
	$(BIN)/python -m pytest -q

benchmarks: setup
	$(BIN)/python benchmarks/zoo_fidelity.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis

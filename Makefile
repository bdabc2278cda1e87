# Two commands for a fresh machine: `make run` (set up, then the main job on built-in
# defaults) and `make test` (set up, then the test suite). Both create .venv as needed.
# The editable install is strict (a link tree), so IDEs and static tools follow the package_dir
# mapping; after adding or removing a module, run `touch setup.py && make setup`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast benchmarks clean

setup: $(STAMP)

$(STAMP): setup.py pyproject.toml
	@bash tools/system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[test]" --config-settings editable_mode=strict
	@touch $(STAMP)

run: setup
	mkdir -p out
	rm -rf out/pixel1_40ms
	$(BIN)/edgetailor specialize --device pixel1 --budget-ms 40 --out out/pixel1_40ms

test: setup  # two pytest workers, each file on one worker (its module fixtures built once)
	@bash tools/postgres-for-tests.sh
	@bash tools/ofa-venv.sh
	@PYTHON=$(PYTHON) bash tools/client-venvs.sh
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=30

test-fast: setup  # the suite without the tests that train or convert models (marked slow)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow"

benchmarks: setup
	$(BIN)/python benchmarks/zoo_fidelity.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis

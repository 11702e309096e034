# Two entry points for a newcomer: `make demo` and `make test`. Everything is installed into .venv
# by the project's own pyproject extras, so a fresh machine needs only Python 3 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench clean deep fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[regtest]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,regtest]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/msigvault demo

# mypy --strict on the public modules (pyproject.toml [tool.mypy]) first: a type error fails CI too
test: $(VENV)/.dev-installed
	bash .ci/ensure-postgresql
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

deep: $(VENV)/.dev-installed
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q -p no:cacheprovider

# The fuzz harnesses with many more examples than CI runs (MSIGVAULT_FUZZ_EXAMPLES per harness).
fuzz: $(VENV)/.dev-installed
	MSIGVAULT_FUZZ_EXAMPLES=$${MSIGVAULT_FUZZ_EXAMPLES:-20000} HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q \
		-p no:cacheprovider tests/psbt/test_fuzz_roles.py tests/psbt/test_fuzz_parse.py \
		tests/test_fuzz_parsers.py tests/formats/test_fuzz.py

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/addresses.py
	$(BIN)/python bench/psbt.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/scan.py
	$(BIN)/python bench/hostile.py
	$(BIN)/python bench/sessions.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis

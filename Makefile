# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall whenever pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: venv lint test test-snowflake demo bench bench-scale clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,dbt]'
	rm -f $(VENV)/.installed-*
	touch $@

# The embedded Snowflake (sync_project/local_snowflake/, a distribution of its own) is installed into its own
# environment (.local/snowflake-env), made here once and again whenever its pyproject.toml changes.
EMULATOR := sync_project/local_snowflake
EMULATOR_PYTHON := .local/snowflake-env/bin/python
# The demo's dbt project is parsed once here (its manifest is what its Dagster assets load), not in every process.
DBT_DEMO := sync_project/dbt_demo
$(DBT_DEMO)/target/manifest.json: $(STAMP) $(DBT_DEMO)/dbt_project.yml $(DBT_DEMO)/profiles.yml $(wildcard $(DBT_DEMO)/models/*)
	cd $(DBT_DEMO) && DO_NOT_TRACK=1 ../../$(BIN)/dbt parse --quiet --profiles-dir .

venv: $(STAMP) $(DBT_DEMO)/target/manifest.json
	$(BIN)/python -m sync_project.embedded_snowflake >/dev/null

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy sync_project sync_project_tests
	# The emulator, with its own configuration and against its own environment's packages.
	cd $(EMULATOR) && ../../$(BIN)/mypy --python-executable ../../$(EMULATOR_PYTHON) local_snowflake tests

test: lint
	# Dagster's own check that the definitions load (in a throwaway instance folder, with the project's settings).
	mkdir -p .local/dg-check && cp dagster.yaml .local/dg-check/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.local/dg-check $(BIN)/dg check defs
	# And the demo's workspace, the mirror beside its downstream location (dg check defs takes no workspace file).
	DAGSTER_HOME=$(CURDIR)/.local/dg-check $(BIN)/python -W ignore -m dagster definitions validate \
		-w sync_project/downstream_demo/workspace.yaml
	$(EMULATOR_PYTHON) -m pytest -q $(EMULATOR)
	$(BIN)/pytest

# The Snowflake contract tests against a real account (the SNOWFLAKE_* variables); without one, says how.
test-snowflake: venv
	$(BIN)/python -m sync_project_tests.contract

# The embedded Snowflake with demo data, then the Dagster UI on http://127.0.0.1:3000.
# DEMO_ARGS passes options through, e.g. make demo DEMO_ARGS="--rows 1000 --ui-port 3001".
demo: venv
	$(BIN)/sync-project demo $(DEMO_ARGS)

clean:
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache $(EMULATOR)/.mypy_cache $(EMULATOR)/*.egg-info $(DBT_DEMO)/target $(DBT_DEMO)/logs

# Benchmarks run outside CI's time budget; ROWS=10000000 for the big one.
ROWS ?= 1000000
# The parallel backfill runs also on the code before issue 32 (big tables), in turns with today's.
BASELINE ?= 67c9314~1
bench: venv
	$(BIN)/python -m sync_project_tests.bench.sync_bench --rows $(ROWS) --baseline $(BASELINE)

# Big tables as they grow (1, 10 and 100 million rows): time, peak RSS, the download folder's and the disk's peaks.
SCALE_ROWS ?= 1000000 10000000 100000000
bench-scale: venv
	$(BIN)/python -m sync_project_tests.bench.scale --rows $(SCALE_ROWS)

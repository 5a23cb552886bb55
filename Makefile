# Sieve's developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# uv must never download a Python interpreter: these machines reach only the registries.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install test lint fmt typecheck importlint pytest bench run clean

install: $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Re-sync only when the lock or the project metadata changed: a no-op install is instant.
$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

importlint: install
	$(BIN)/lint-imports

# Two workers, each test file on one of them (its module-scoped stack shared by its tests):
# the suite mostly waits on real processes, so two sessions halve it on two cores.
PYTEST_WORKERS ?= 2
pytest: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck importlint pytest

bench: install
	$(BIN)/python -m bench.store

# The embedded mode: Redis, the model hub, the API (Edge store) and a worker, data in ./data.
# Extra options go through ARGS, e.g. make run ARGS="--port 8080".
run: install
	$(BIN)/sieve up $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache

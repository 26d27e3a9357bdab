# Set-up, local run and tests. `make run` and `make test` install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint clean

install: $(STAMP)

$(STAMP): requirements/dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

## Run the whole service locally: broker, Redis, Twilio emulator, hub, webhook and worker.
run: install
	$(BIN)/python -m devtools.local

## Check the layering and types, then run every test against real Redis, Kafka, HTTP and
## a headless Chromium (Debian's package, installed when missing).
test: install lint
	scripts/ensure-redis
	scripts/ensure-chromium
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

VENV ?= .venv
export CALLBOT_DATA_DIR ?= ./var

.PHONY: run test setup setup-test lint typecheck pytest bench clean

run: setup
	$(VENV)/bin/callbot serve

test: setup-test lint typecheck pytest

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

lint:
	$(VENV)/bin/ruff check .

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

bench: setup-test
	$(VENV)/bin/python -m bench.bench_asr
	@echo "start the service (make run) and then: $(VENV)/bin/python -m bench.bench_turns"

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache

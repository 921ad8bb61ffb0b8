VENV ?= .venv
export CALLBOT_DATA_DIR ?= ./var

.PHONY: run test setup setup-test lint typecheck rasa-test pytest bench clean

run: setup
	$(VENV)/bin/callbot serve

test: setup-test lint typecheck rasa-test pytest

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

lint:
	$(VENV)/bin/ruff check .

typecheck:
	$(VENV)/bin/mypy

rasa-test:
	@scripts/test_rasa.sh

pytest:
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

bench: setup-test
	$(VENV)/bin/python -m bench.bench_asr
	$(VENV)/bin/python -m bench.bench_rasa
	@echo "start the service (make run) and then: $(VENV)/bin/python -m bench.bench_turns"

clean:
	rm -rf $(VENV) .venv-rasa var .mypy_cache .ruff_cache

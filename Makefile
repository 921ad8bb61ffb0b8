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

# Hostile input, searched wider than in `make test`: FUZZ_EXAMPLES examples per
# property (a twentieth of that per API operation, token and mode), at random
# rather than derandomised. About 6 minutes on 2 cores; bounded by FUZZ_TIMEOUT_S.
FUZZ_EXAMPLES ?= 2000
FUZZ_TIMEOUT_S ?= 1800
.PHONY: fuzz
fuzz: setup
	CALLBOT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) timeout $(FUZZ_TIMEOUT_S) \
		$(VENV)/bin/python -m pytest -q -p no:cacheprovider -s tests/fuzz

clean:
	rm -rf $(VENV) .venv-rasa var .mypy_cache .ruff_cache

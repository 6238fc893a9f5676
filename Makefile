# Ticket MATE. `make run` serves on the embedded SQLite database; `make test` runs everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
HOST   ?= 127.0.0.1

.PHONY: run demo test lint typecheck unit install install-dev clean bench bench-quick soak

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	touch $@

$(BIN)/.installed-dev: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(BIN)/.installed $@

# The bench extra (baselines, profiler) goes beside the service's own install; `make run`
# and its stamp are left alone.
$(BIN)/.installed-bench: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[bench]'
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

run: $(BIN)/.installed
	$(BIN)/ticketmate db upgrade
	$(BIN)/ticketmate serve --host $(HOST) --port $(PORT)

# The service, a Teams stand-in with two channels and a replay of real Jira events, on a fresh
# database in var/demo/ (emptied at each start). Ctrl+C stops all of it.
SINK_PORT ?= 8765
demo: $(BIN)/.installed
	$(BIN)/ticketmate dev demo --port $(PORT) --sink-port $(SINK_PORT)

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

test: lint
	$(BIN)/pytest

# The fault suite (tests/reliability) at full size: 2,000-event bursts, 10,000 hostile inputs.
# `make test` runs the same tests small.
soak: $(BIN)/.installed-dev
	TICKETMATE_TEST_SOAK=1 $(BIN)/pytest tests/reliability --timeout=3600 -s

# Benchmarks report figures beside same-run baselines; they never fail on a slow machine.
# PROFILE=1 also records py-spy profiles of the service (bench/results/profile-*.md).
BENCH_FLAGS = $(if $(filter 1 yes true,$(PROFILE)),--profile)

bench: $(BIN)/.installed-bench
	bash bench/prepare.sh
	$(BIN)/python -m bench.run $(BENCH_FLAGS)

bench-quick: $(BIN)/.installed-bench
	bash bench/prepare.sh
	$(BIN)/python -m bench.run --quick $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# docs/configuration.md and .env.example are generated from the Settings class in config.py;
# tests/unit/test_config_docs.py fails until they are regenerated after a change there.
.PHONY: config-docs
config-docs: $(BIN)/.installed
	$(BIN)/ticketmate config docs --write
	$(BIN)/ticketmate config env-example --write

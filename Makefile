# Herald's entry points for a newcomer and for CI.
#
#   make run            embedded mode: REST API + one storage worker in one
#                       process, data in ./data (SQLite + file:// tooz)
#   make test           the whole test suite (needs PostgreSQL, RabbitMQ and
#                       Redis on localhost; .ci/run starts them)
#   make lint           ruff
#   make sample-config  regenerate etc/herald.conf.sample
#   make clean          remove the virtualenv and caches (keeps ./data)
#   make bench          load benchmark: starts the distributed topology on the
#                       machine's RabbitMQ/PostgreSQL/Redis, runs every phase,
#                       stops it, prints the table (docs/performance.md), e.g.
#                       make bench BENCH_ARGS="--mode embedded --duration 10"
#
# Nothing but python3 is needed: the first run creates .venv and installs
# Herald into it (editable, with the test extras). The install is redone
# only when pyproject.toml is newer than the stamp file, so later runs start
# at once.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.herald-installed
# Extra arguments for `herald run` / pytest, e.g.
#   make run ARGS="--config-file deploy/herald.conf"
#   make test ARGS="-k e2e -x"
ARGS ?=
BENCH_ARGS ?=

.PHONY: run test lint sample-config clean venv bench

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The stamp, not .venv itself, carries the date of the last install: a
# directory's mtime changes whenever anything inside it does.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

run: $(STAMP)
	$(BIN)/herald run $(ARGS)

test: $(STAMP)
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# aiohttp (the bench extra) is installed on first use only: tests never need it.
bench: $(STAMP)
	$(BIN)/python -c 'import aiohttp' 2>/dev/null || $(BIN)/python -m pip install -e '.[test,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

sample-config: $(STAMP)
	$(BIN)/oslo-config-generator --config-file etc/herald-config-generator.conf

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache test-output
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

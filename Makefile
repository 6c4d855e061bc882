# Herald's entry points for a newcomer and for CI.
#
#   make run            embedded mode: REST API + one storage worker in one
#                       process, data in ./data (SQLite + file:// tooz)
#   make test           the whole test suite; first tests/preflight.py checks,
#                       in seconds, that python3 >= 3.11, the system packages
#                       of tests/system-packages.txt and PostgreSQL, RabbitMQ
#                       and Redis on localhost are there, and if not stops with
#                       one message saying what to install or start
#   make test-deps      install (apt-get) the missing system packages of
#                       tests/system-packages.txt (nginx-light, chromium)
#   make lint           ruff
#   make sample-config  regenerate etc/herald.conf.sample
#   make clean          remove the virtualenv and caches (keeps ./data)
#   make bench          load benchmark: starts the distributed topology on the
#                       machine's RabbitMQ/PostgreSQL/Redis, runs every phase,
#                       stops it, prints the table (docs/performance.md), e.g.
#                       make bench BENCH_ARGS="--mode embedded --duration 10"
#   make up             docker compose up: the whole topology in containers
#                       (docker-compose.yml), REST on :8888, WebSocket on :9000,
#                       returns once every container is healthy; Compose v2
#                       (`docker compose`) or Debian 12's `docker-compose` 1.29
#   make down / logs    docker compose down / follow every service's logs
#   make compose-test   the compose topology built and run for real on this
#                       machine's Docker engine (installed and started if
#                       missing; offline stand-in images when no registry
#                       answers), checked as an operator uses it, then removed
#   make up-local       the same services as local processes (honcho,
#                       Procfile) on this machine's RabbitMQ/PostgreSQL/Redis
#
# `make run` needs nothing but python3: the first run creates .venv and
# installs Herald into it (editable, with the test extras). The install is
# redone only when pyproject.toml is newer than the stamp file, so later runs
# start at once. `make test` also needs the services and packages above.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.herald-installed
# Extra arguments for `herald run` / pytest, e.g.
#   make run ARGS="--config-file deploy/herald.conf"
#   make test ARGS="-k e2e -x"
ARGS ?=
BENCH_ARGS ?=
# deploy/compose.sh runs whichever Compose is installed (v2 `docker compose`,
# else v1 `docker-compose`) with COMPOSE_PROJECT_NAME=herald; tests/deploy/
# test_makefile_compose.py checks the choice with stand-in executables.
COMPOSE ?= deploy/compose.sh
# Debian installs nginx in /usr/sbin, which a normal user's PATH lacks.
NGINX ?= $(shell command -v nginx 2>/dev/null || ls /usr/sbin/nginx 2>/dev/null)
# apt-get as root, through sudo otherwise; never a question (CI has no stdin).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: run test test-deps preflight lint sample-config clean venv bench up down logs up-local \
	compose-test

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

# The preflight runs with the system python3 before .venv is built, so a
# machine that lacks something learns it in seconds, not after the install
# or halfway through the suite. The venv is built from the recipe, not as a
# prerequisite, so that even `make -j` cannot start it before the preflight.
# pytest-xdist spreads the tests over one worker per core; every test makes
# its own databases, topics and ports, so they do not meet.
test: preflight
	@$(MAKE) --no-print-directory -s $(STAMP)
	$(BIN)/pytest -n auto $(ARGS)

preflight:
	@$(PYTHON) tests/preflight.py

# tests/system-packages.txt is the list (the preflight and a test read it
# too); only what the preflight reports missing is installed, so a ready
# machine runs no apt-get at all. nginx's package may start a system nginx
# on port 80: the tests run their own, so it is stopped again.
test-deps:
	@missing="$$($(PYTHON) tests/preflight.py --missing-packages)" || exit 1; \
	if [ -z "$$missing" ]; then echo "test-deps: every package is installed"; exit 0; fi; \
	echo "+ apt-get update && apt-get install -y" $$missing; \
	$(APT_GET) update -q && $(APT_GET) install -y -q $$missing || exit 1; \
	case "$$missing" in *nginx*) $(SUDO) service nginx stop >/dev/null 2>&1 || true;; esac; \
	still="$$($(PYTHON) tests/preflight.py --missing-packages)" || exit 1; \
	if [ -n "$$still" ]; then echo "test-deps: still missing after the install:" $$still >&2; exit 1; fi

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# ARGS go to docker compose, e.g. make up ARGS="--scale ws-gateway=3 --scale storage=2"
# up waits for health: `up --wait` with Compose v2; v1 has no --wait, so
# there deploy/compose-wait.sh polls the containers' health (bounded,
# HERALD_COMPOSE_WAIT_TIMEOUT seconds, default 300).
up:
	$(COMPOSE) --up-healthy $(ARGS)

down:
	$(COMPOSE) down $(ARGS)

logs:
	$(COMPOSE) logs -f --tail=100 $(ARGS)

# tests/deploy/compose_run.py: engine, images, up, the operator's checks,
# down -v (always), one summary line. Needs root or sudo for the engine.
compose-test: $(STAMP)
	$(BIN)/python -m tests.deploy.compose_run

# honcho (the ops extra) is installed on first use. Without nginx, lb is
# left out and the api and gateway answer on :8878 and :9010 directly.
up-local: $(STAMP)
	$(BIN)/python -c 'import honcho' 2>/dev/null || $(BIN)/python -m pip install -e '.[test,ops]'
	createdb -h 127.0.0.1 -U postgres herald 2>/dev/null || true
	mkdir -p data/lb
	set -a && . deploy/local.env && set +a && $(BIN)/herald db upgrade
	PATH="$(CURDIR)/$(BIN):$$PATH" NGINX="$(NGINX)" $(BIN)/honcho -f Procfile -e deploy/local.env \
		start $(if $(NGINX),,storage api ws-gateway)

sample-config: $(STAMP)
	$(BIN)/oslo-config-generator --config-file etc/herald-config-generator.conf

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache test-output
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

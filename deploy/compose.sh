#!/bin/sh
# Runs Docker Compose for `make up` / `make down` / `make logs`, with whichever
# Compose the machine has: Compose v2 (`docker compose`, the plugin) when it
# answers, else Debian 12's Compose v1 (`docker-compose` 1.29).
#
#   deploy/compose.sh down -v                  # any compose arguments
#   deploy/compose.sh --up-healthy [ARGS...]   # up -d --build ARGS, then
#                                              # wait until every container is healthy
#
# The project is called herald (COMPOSE_PROJECT_NAME, which both versions
# read; 1.29 rejects a top-level `name:` in docker-compose.yml), so both name
# containers, networks and volumes alike whatever the checkout's directory.
set -eu

: "${COMPOSE_PROJECT_NAME:=herald}"
export COMPOSE_PROJECT_NAME
here=$(dirname "$0")

if docker compose version >/dev/null 2>&1; then
    compose="docker compose"
elif command -v docker-compose >/dev/null 2>&1; then
    compose="docker-compose"
else
    echo "compose.sh: neither \`docker compose\` (Compose v2) nor \`docker-compose\`" \
         "(Debian 12: apt-get install docker-compose) is installed" >&2
    exit 127
fi

if [ "${1:-}" = "--up-healthy" ]; then
    shift
    if [ "$compose" = "docker compose" ]; then
        # v2 waits for health itself (and fails on an unhealthy container).
        set -- up -d --build --wait "$@"
    else
        # v1 has no --wait: up, then poll the containers' health, bounded.
        echo "+ docker-compose up -d --build $*"
        docker-compose up -d --build "$@"
        exec "$here/compose-wait.sh"
    fi
fi

echo "+ $compose $*"
# $compose is split on purpose: "docker compose" is two words.
# shellcheck disable=SC2086
exec $compose "$@"

#!/bin/sh
# Runs Docker Compose for `make up` / `make down` / `make logs`, with whichever
# Compose the machine has: Compose v2 (`docker compose`, the plugin) when it
# answers, else Debian 12's Compose v1 (`docker-compose` 1.29).
#
#   deploy/compose.sh down -v                  # any compose arguments
#   deploy/compose.sh --up-healthy [ARGS...]   # up -d --build ARGS, wait until
#                                              # every container is healthy,
#                                              # reload lb's nginx
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
        echo "+ docker compose up -d --build --wait $*"
        docker compose up -d --build --wait "$@"
    else
        # v1 has no --wait: up, then poll the containers' health, bounded.
        echo "+ docker-compose up -d --build $*"
        docker-compose up -d --build "$@"
        "$here/compose-wait.sh"
    fi
    # nginx resolves the gateways' addresses when it (re)loads its
    # configuration (deploy/nginx/backends-compose.conf): a reload makes
    # gateways added by --scale get websockets. Harmless when nothing changed.
    echo "+ $compose exec -T lb nginx -s reload"
    # shellcheck disable=SC2086
    if $compose exec -T lb nginx -s reload; then
        # The reload is only signalled: nginx starts new workers (with the new
        # gateways) a moment later, and websockets opened before then still
        # land on the old ones (make compose-test saw 5 of 6 on one gateway).
        sleep 2
    else
        echo "compose.sh: could not reload lb (not running?)" >&2
    fi
    exit 0
fi

echo "+ $compose $*"
# $compose is split on purpose: "docker compose" is two words.
# shellcheck disable=SC2086
exec $compose "$@"

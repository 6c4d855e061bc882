#!/bin/sh
# Waits until every container of the compose project is ready, for Compose v1
# (docker-compose 1.29), which lacks `up --wait`. deploy/compose.sh runs it
# after `docker-compose up -d`.
#
# Ready: a container with a health check reports healthy; one without is
# running, or has exited 0 (the one-shot `migrate`). It fails at once on an
# unhealthy container or one that exited non-zero, and after
# HERALD_COMPOSE_WAIT_TIMEOUT seconds (default 300) otherwise, naming the
# containers that were not ready.
set -eu

project=${COMPOSE_PROJECT_NAME:-herald}
timeout=${HERALD_COMPOSE_WAIT_TIMEOUT:-300}
interval=${HERALD_COMPOSE_WAIT_INTERVAL:-2}
deadline=$(( $(date +%s) + timeout ))

while :; do
    ids=$(docker ps -a -q --filter "label=com.docker.compose.project=$project")
    if [ -z "$ids" ]; then
        echo "compose-wait: project $project has no containers" >&2
        exit 1
    fi
    waiting=""
    # One line per container: name status exit-code health ("none" without a check).
    # shellcheck disable=SC2086
    states=$(docker inspect --format \
        '{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' \
        $ids)
    while read -r name status code health; do
        name=${name#/}
        case "$status/$health" in
            exited/*)  # a one-shot's exit code is its outcome, whatever its health
                if [ "$code" != 0 ]; then
                    echo "compose-wait: $name exited with code $code" >&2; exit 1
                fi ;;
            */unhealthy)
                echo "compose-wait: $name is unhealthy" >&2; exit 1 ;;
            running/healthy | running/none) ;;
            *) waiting="$waiting $name($status/$health)" ;;
        esac
    done <<STATES
$states
STATES
    if [ -z "$waiting" ]; then
        echo "compose-wait: every container of $project is ready"
        exit 0
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "compose-wait: not ready after ${timeout}s:$waiting" >&2
        exit 1
    fi
    sleep "$interval"
done

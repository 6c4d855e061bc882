#!/bin/sh
# Builds local stand-ins for the five upstream images docker-compose.yml
# names (python, postgres, rabbitmq, redis, nginx) from Debian's packages,
# for a machine that reaches Debian's mirror but no container registry.
#
#   deploy/offline-images/build.sh            # build what is missing, print the settings
#   deploy/offline-images/build.sh --env FILE # also write HERALD_*_IMAGE=... lines to FILE
#
# Where a registry answers (`docker pull` of the python image works), it
# builds nothing and prints nothing: the real images are used. Otherwise:
#
# 1. The base, herald-offline/debian:bookworm: `debootstrap --variant=minbase`
#    into a temporary directory, imported with `docker import`. Made once;
#    delete the image to remake it.
# 2. One image per upstream, FROM that base, tagged herald-offline/<name>:bookworm
#    (Docker's cache makes a rebuild with nothing changed take seconds).
#
# The python stand-in trusts this machine's CA bundle (copied in at build
# time) and sets PIP_CERT to it: where PyPI is reached through a proxy with
# its own CA, pip inside the Herald image's build needs that bundle.
#
# Needs root (debootstrap) and a running Docker engine. Must not start,
# stop or remove any container.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
mirror=${HERALD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=herald-offline/debian:bookworm
env_file=
[ "${1:-}" = "--env" ] && env_file=${2:?--env needs a file}

log() { printf 'offline-images: %s\n' "$*" >&2; }

if [ -z "${HERALD_OFFLINE_IMAGES_FORCE:-}" ] \
        && timeout 30 docker pull -q "${HERALD_PYTHON_IMAGE:-python:3.12-slim}" >/dev/null 2>&1; then
    log "a registry answers: using the upstream images"
    exit 0
fi

if ! docker image inspect "$base" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
    root=$(mktemp -d) && chmod 755 "$root"  # apt's _apt user reads it
    trap 'rm -rf "$root"' EXIT
    log "debootstrap bookworm (minbase) from $mirror"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 \
        || { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
    rm -f "$root.log"
    echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
    # Keep images small: no recommends. Each image runs apt-get update
    # itself, so a base made long ago does not install from stale lists.
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$root/etc/apt/apt.conf.d/90herald"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    log "importing $base"
    tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$base" >/dev/null
    rm -rf "$root"
    trap - EXIT
fi

cp /etc/ssl/certs/ca-certificates.crt "$here/python/build-ca.crt"
logs=$(mktemp -d)
trap 'rm -rf "$here/python/build-ca.crt" "$logs"' EXIT
# In parallel: each build mostly waits on Debian's mirror.
log "building herald-offline/{python,postgres,rabbitmq,redis,nginx}:bookworm"
pids=
for name in python postgres rabbitmq redis nginx; do
    docker build --build-arg "BASE=$base" -t "herald-offline/$name:bookworm" "$here/$name" \
        >"$logs/$name.log" 2>&1 &
    pids="$pids $name:$!"
done
for job in $pids; do
    if ! wait "${job#*:}"; then
        log "building ${job%%:*} failed:"; tail -20 "$logs/${job%%:*}.log" >&2; exit 1
    fi
done

settings="HERALD_PYTHON_IMAGE=herald-offline/python:bookworm
HERALD_POSTGRES_IMAGE=herald-offline/postgres:bookworm
HERALD_RABBITMQ_IMAGE=herald-offline/rabbitmq:bookworm
HERALD_REDIS_IMAGE=herald-offline/redis:bookworm
HERALD_NGINX_IMAGE=herald-offline/nginx:bookworm"
[ -n "$env_file" ] && printf '%s\n' "$settings" >"$env_file"
printf '%s\n' "$settings"

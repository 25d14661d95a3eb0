#!/usr/bin/env bash
# Build the sidecar image (`make image`) with docker or podman; the last line printed is the
# image reference, everything else goes to stderr.
#
# The base image is BASE_IMAGE when set, else the Dockerfile's default (the official Python
# slim image). With podman on a machine that cannot pull it (no registry), a Debian base with
# python3 is made from Debian packages first (mmdebstrap, then `podman import`); its tarball
# is cached outside the repository and reused.
#
# Environment: ENGINE (docker|podman), IMAGE (default appmixer-audit:<version>), BASE_IMAGE,
# APPMIXER_AUDIT_CACHE_DIR (default /var/cache/appmixer-audit for root, else ~/.cache/...).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

say() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 1; }

version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image=${IMAGE:-appmixer-audit:${version}}
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
default_base=$(sed -n '/^ARG BASE_IMAGE=/{s///p;q}' Dockerfile)

engine=${ENGINE:-}
if [[ -z "$engine" ]]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        engine=docker
    elif command -v podman >/dev/null; then
        engine=podman
    else
        die "neither a Docker engine nor podman answers; install one (e.g. apt-get install podman runc)"
    fi
fi

if [[ "$engine" == podman ]]; then
    # Hosts whose cgroups crun refuses, or whose limits are below podman's default ulimits.
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}
fi

cache_root=${APPMIXER_AUDIT_CACHE_DIR:-}
if [[ -z "$cache_root" ]]; then
    if [[ $(id -u) == 0 ]]; then cache_root=/var/cache/appmixer-audit; else cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/appmixer-audit; fi
fi

# A Debian base made from packages: the same python3 the build and runtime stages expect.
local_base() {
    local suite=bookworm packages=python3,python3-venv,ca-certificates
    local ref=localhost/appmixer-audit-base:${suite}
    local tarball=$cache_root/images/debian-${suite}-python3.tar
    if podman image exists "$ref"; then echo "$ref"; return; fi
    command -v mmdebstrap >/dev/null || die "no registry image and no mmdebstrap to make a base: apt-get install mmdebstrap"
    mkdir -p "$cache_root/images"
    (
        flock 9
        if [[ ! -s "$tarball" ]]; then
            say "making a Debian ${suite} base with ${packages} (mmdebstrap, once; cached in ${tarball})"
            mmdebstrap --quiet --format=tar --variant=apt --include="$packages" "$suite" "$tarball.part" >&2
            mv "$tarball.part" "$tarball"
        fi
    ) 9>"$cache_root/images/.lock"
    podman import --quiet "$tarball" "$ref" >/dev/null
    echo "$ref"
}

base=${BASE_IMAGE:-}
if [[ -z "$base" && "$engine" == podman ]]; then
    if podman image exists "$default_base" || podman pull --quiet "$default_base" >/dev/null 2>&1; then
        base=$default_base
    else
        say "cannot pull ${default_base}: building on a local Debian base instead"
        base=$(local_base)
    fi
fi

args=(build --tag "$image" --build-arg "VERSION=${version}" --build-arg "REVISION=${revision}")
[[ -n "$base" ]] && args+=(--build-arg "BASE_IMAGE=${base}")
if [[ "$engine" == podman ]]; then
    # The docker format keeps HEALTHCHECK (the OCI image format has no field for it).
    args+=(--format docker)
    # Downloads inside the build trust what the host trusts (TLS-intercepting proxies).
    ca=/etc/ssl/certs/ca-certificates.crt
    if [[ -s "$ca" ]]; then
        args+=(--volume "$ca:$ca:ro" --build-arg "PIP_CERT=$ca")
    fi
fi

started=$(date +%s)
say "building ${image} with ${engine} on ${base:-$default_base}"
"$engine" "${args[@]}" . >&2
size=$("$engine" image inspect --format '{{.Size}}' "$image")
say "built in $(( $(date +%s) - started )) s; size $(( size / 1000000 )) MB (${size} bytes)"
"$engine" image inspect --format '{{index .RepoTags 0}}' "$image"

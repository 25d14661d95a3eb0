#!/usr/bin/env bash
# The integration suite with its Elasticsearch from testcontainers (`make test-testcontainers`),
# the path users with Docker take, run here through podman's Docker-compatible API socket and
# a locally built Elasticsearch image (es-image.sh). Extra arguments go to pytest.
#
# testcontainers' reaper (Ryuk) image cannot be pulled here, so it is disabled and the
# fixture removes its own container; this host is itself a container, so testcontainers is
# told to reach the mapped port on the Docker host rather than a gateway.
set -euo pipefail
shopt -s inherit_errexit
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}

image=$(tests/container/es-image.sh)
run_dir=$(mktemp -d /tmp/appmixer-audit-podman.XXXXXX)
socket=$run_dir/podman.sock
podman system service --time=0 "unix://$socket" >"$run_dir/service.log" 2>&1 &
service=$!
trap 'kill "$service" 2>/dev/null; wait "$service" 2>/dev/null; rm -rf "$run_dir"' EXIT
for _ in $(seq 100); do [[ -S "$socket" ]] && break; sleep 0.1; done
[[ -S "$socket" ]] || { echo "podman system service did not open $socket" >&2; exit 1; }

unset ES_URL APPMIXER_AUDIT_ES_URL
export DOCKER_HOST=unix://$socket \
    TESTCONTAINERS_RYUK_DISABLED=true \
    TESTCONTAINERS_CONNECTION_MODE=docker_host \
    APPMIXER_AUDIT_ES_IMAGE=$image
echo "testcontainers: Elasticsearch from $image through $DOCKER_HOST" >&2
.venv/bin/python -m pytest tests/integration "$@"

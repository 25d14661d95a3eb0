# The appmixer-audit sidecar image: the agent with its compiled per-line path (mypyc), run as a
# fixed non-root uid, with the CLI as entrypoint:
#
#   docker run IMAGE run --path '/var/log/appmixer/*.ndjson'
#
# `make image` builds it with docker or podman. BASE_IMAGE defaults to the official Python
# slim image; any Debian-based image with python3 and python3-venv works (the tests build on
# a locally made Debian base). PIP_CERT names a CA bundle mounted into the build when
# downloads pass through a TLS proxy the base image does not trust.

ARG BASE_IMAGE=docker.io/library/python:3.12-slim

# --------------------------------------------------------------------------- build stage
# A compiler and Python's headers, used to compile the per-line path and then left behind.
FROM ${BASE_IMAGE} AS build
ARG PIP_CERT=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DEBIAN_FRONTEND=noninteractive

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && if ! python3 -c 'import pathlib, sys, sysconfig; sys.exit(not pathlib.Path(sysconfig.get_paths()["include"], "Python.h").is_file())'; then \
         apt-get install -y --no-install-recommends python3-dev; \
       fi \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a code change reuses this layer. The
# compiled build type-checks the code, so mypy and the dependencies come before it (setup.py).
COPY pyproject.toml ./
# hadolint ignore=DL3013
RUN python3 -m venv /opt/build \
    && python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(p["project"]["dependencies"]))' > /tmp/requirements.txt \
    && /opt/build/bin/pip install ${PIP_CERT:+--cert "$PIP_CERT"} "setuptools>=77" wheel "mypy>=1.11" -r /tmp/requirements.txt \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install ${PIP_CERT:+--cert "$PIP_CERT"} -r /tmp/requirements.txt

# The project (.dockerignore keeps tests, docs and environments out), compiled with mypyc;
# the runtime virtualenv gets the compiled wheel on top of the dependencies.
COPY . ./
RUN APPMIXER_AUDIT_COMPILE=1 /opt/build/bin/pip wheel --no-build-isolation --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/appmixer_audit-*.whl \
    && /opt/venv/bin/python -I -c 'import sys, agent.build as b; sys.exit(b.builds() != {True})' \
    && /opt/venv/bin/appmixer-audit --help > /dev/null \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

# --------------------------------------------------------------------------- runtime stage
FROM ${BASE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="appmixer-audit" \
      org.opencontainers.image.description="Sidecar agent that ships Appmixer audit logs into Elasticsearch as ECS events with diffs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed uid/gid, so volume permissions and Kubernetes runAsUser can name it. Written into
# /etc/passwd directly: not every Debian-based image ships useradd.
RUN echo "appmixer:x:10001:10001:appmixer-audit:/var/lib/appmixer-audit:/usr/sbin/nologin" >> /etc/passwd \
    && echo "appmixer:x:10001:" >> /etc/group \
    && mkdir -p /var/lib/appmixer-audit/state /var/lib/appmixer-audit/dead-letter /var/log/appmixer \
    && chown -R 10001:10001 /var/lib/appmixer-audit /var/log/appmixer

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APPMIXER_AUDIT_STATE_DIR=/var/lib/appmixer-audit/state \
    APPMIXER_AUDIT_DLQ_DIR=/var/lib/appmixer-audit/dead-letter \
    APPMIXER_AUDIT_METRICS_ADDRESS=0.0.0.0:9464

# Checkpoints and dead letters outlive the container; the logs come from the service's volume.
VOLUME ["/var/lib/appmixer-audit/state", "/var/lib/appmixer-audit/dead-letter"]
WORKDIR /var/lib/appmixer-audit
USER 10001:10001
EXPOSE 9464

# /healthz on the metrics port: fails only when a loop is stuck, so a restart would help.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, sys, urllib.request; port = os.environ.get('APPMIXER_AUDIT_METRICS_ADDRESS', ':9464').rpartition(':')[2]; sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status != 200)"]

# Exec form: the agent is PID 1 and receives SIGTERM itself (it drains and checkpoints).
STOPSIGNAL SIGTERM
ENTRYPOINT ["appmixer-audit"]
CMD ["--help"]

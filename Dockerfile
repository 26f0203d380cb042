# syntax=docker/dockerfile:1
# oncall-router image: a venv built from the project's wheel on the official Python slim base.
#
#   docker build -t oncall-router:0.1.0 .
#   docker run --rm -p 9095:9095 --read-only oncall-router:0.1.0 serve \
#       --config /etc/oncall-router/routing.yaml --dry-run
#
# Base: the official Python image, pinned to the 3.11 line and the Debian release (trixie); the
# tag still takes Python patch releases and Debian security updates at each build. For bit-for-bit
# rebuilds pin the digest too (python:3.11-slim-trixie@sha256:...) and let Renovate bump it.
# Both stages must use the same base: the venv built in the first is copied into the second, and
# a venv only works with the interpreter (path and version) it was created with.

FROM python:3.11-slim-trixie AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what building the wheel needs (.dockerignore keeps everything else out of the context);
# README.md is the package's long description in pyproject.toml.
COPY pyproject.toml README.md ./
COPY receiver/ receiver/
# The wheel, then a venv with it and its dependencies as pinned in pyproject.toml. The venv
# has no pip of its own: nothing installs anything at run time.
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-compile /wheels/*.whl \
    && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv

# The image refuses to build with a shipped routing file that `check` rejects.
COPY routing.yaml /etc/oncall-router/routing.yaml
RUN /opt/venv/bin/oncall-router check --config /etc/oncall-router/routing.yaml


FROM python:3.11-slim-trixie

LABEL org.opencontainers.image.title="oncall-router" \
      org.opencontainers.image.description="Turns Alertmanager and Sentry webhooks into pages." \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric UID/GID: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 oncall \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin oncall

# Nothing is written at run time, so the root filesystem can be read-only: bytecode was
# compiled at build time and is never written back; logs go to stderr, dry-run lines to stdout.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=builder /opt/venv /opt/venv
# The default routing file; in Kubernetes a ConfigMap mounted over /etc/oncall-router replaces it.
COPY --from=builder /etc/oncall-router/routing.yaml /etc/oncall-router/routing.yaml

USER 10001:10001
EXPOSE 9095

# Liveness for plain Docker (Kubernetes ignores HEALTHCHECK and uses its probes). The slim image
# has no curl; urlopen raises, and so exits 1, on a refused connection or any non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9095/-/healthy', timeout=3)"]

ENTRYPOINT ["oncall-router"]
CMD ["serve", "--config", "/etc/oncall-router/routing.yaml"]

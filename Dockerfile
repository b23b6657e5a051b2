# The login-etl worker. Build: docker build -t login-etl .  Run: see docker-compose.yml or
# deploy/k8s/. tests/deploy/test_dockerfile.py checks this file (non-root, pinned base,
# HEALTHCHECK, locked install).
#
# Dependencies are installed from requirements.lock (exact versions of the runtime dependencies,
# made from pyproject.toml by pip-compile; its header has the command), then the project itself
# with --no-deps, so an image built today and one built next month hold the same packages.
# The base is pinned to a Python patch release and Debian release; pin a digest as well
# (python:3.11.14-slim-trixie@sha256:...) where the registry is reachable to look it up.

FROM python:3.11.14-slim-trixie AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# A virtual environment, so that the runtime stage copies exactly what was installed.
RUN python -m venv /opt/login-etl
ENV PATH=/opt/login-etl/bin:$PATH
WORKDIR /src
# The lock file first: this layer is rebuilt only when the dependencies change.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps .

FROM python:3.11.14-slim-trixie
ENV PATH=/opt/login-etl/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOGIN_ETL_METRICS_PORT=9100
# An unprivileged user with fixed ids, so that Kubernetes' runAsNonRoot can check it and a key
# file can be chowned to it. The worker needs no file system access beyond its key file, so the
# root file system can be mounted read-only.
RUN groupadd --system --gid 10001 login-etl \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin login-etl
COPY --from=build /opt/login-etl /opt/login-etl
USER 10001:10001
# /healthz (liveness), /readyz (readiness) and /metrics (Prometheus).
EXPOSE 9100
# Liveness: slim images have no curl, so Python asks. urlopen raises on a refused connection or
# on an HTTP error status, and the exception makes the exit status 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LOGIN_ETL_METRICS_PORT', '9100') + '/healthz', timeout=4)"]
ENTRYPOINT ["login-etl"]
CMD ["run"]

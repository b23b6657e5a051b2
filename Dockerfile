# The login-etl worker. Build: docker build -t login-etl .  Run: see docker-compose.yml.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# An unprivileged user: the worker needs no file system access beyond its key file.
RUN useradd --system --uid 10001 --no-create-home login-etl
USER 10001
ENTRYPOINT ["login-etl"]
CMD ["run"]

"""The deployment files (Dockerfile, docker-compose.yml, deploy/k8s/), checked by tools rather
than by eye, all offline: the schemas ship inside the packages or in `schemas/`.

- test_compose: check-jsonschema with its vendored copy of the Compose spec's schema.
- test_k8s: kubernetes-validate, which bundles the Kubernetes OpenAPI schemas as JSON schemas
  (strict: unknown fields fail).
- test_keda: KEDA's ScaledObject and TriggerAuthentication, which have no such schema, against
  the JSON schemas in `schemas/`.
- test_dockerfile: dockerfile-parse; test_lock: requirements.lock against pyproject.toml.
- test_prometheus: the Grafana dashboard and the Prometheus rules query only exported metrics;
  promtool (when installed) checks the rules, runs their unit tests and lints a live scrape.
- test_setting_names: every LOGIN_ETL_* name in these files is a setting of
  login_etl.config.Settings.
"""

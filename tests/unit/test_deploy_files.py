"""The deployment files, checked by tools rather than by eye.

- docker-compose.yml: check-jsonschema with its vendored copy of the Compose spec's schema.
- deploy/k8s/*.yaml: kubernetes-validate, which bundles the Kubernetes OpenAPI schemas as JSON
  schemas (strict: unknown fields fail). KEDA's ScaledObject and TriggerAuthentication have no
  such schema, so they are checked against the JSON schemas written below, after KEDA's CRDs
  and documentation (keda.sh/v1alpha1, KEDA 2.13+). They cover the commonly used fields and are
  stricter than the CRDs on the aws-sqs-queue trigger's metadata, which the CRDs type only as a
  map of strings. The HPA behaviour a ScaledObject hands to Kubernetes is checked with
  Kubernetes' own HPA schema.
- Dockerfile: dockerfile-parse.
- Every LOGIN_ETL_* name in these files must be a setting of login_etl.config.Settings.

All offline: the schemas ship inside the packages.
"""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from login_etl.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
LOCK = ROOT / "requirements.lock"

# The oldest Kubernetes minor the manifests are meant for, and the newest one bundled.
K8S_VERSIONS = ("1.30", "1.37")
# Known even before they land in Settings (being added concurrently).
PENDING_SETTINGS = {"LOGIN_ETL_METRICS_PORT", "LOGIN_ETL_LOG_FORMAT"}
# Kubernetes' resource.Quantity syntax (kubernetes-validate's schema accepts any string).
QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every Kubernetes object under deploy/k8s."""
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_yaml_documents(path)
    ]


def k8s_object(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in k8s_documents() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} under deploy/k8s, found {len(found)}"
    return found[0]


def worker_container() -> dict[str, Any]:
    containers = k8s_object("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


# --- (a) docker-compose.yml against the Compose spec -------------------------------------------


def check_compose(path: Path) -> tuple[int, list[dict[str, Any]]]:
    """check-jsonschema's exit status and errors for a compose file (vendored schema: offline)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            "--output-format",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    report = json.loads(result.stdout)
    return result.returncode, report["errors"] + report.get("parse_errors", [])


def test_compose_file_matches_the_compose_spec():
    status, errors = check_compose(COMPOSE)
    assert (status, errors) == (0, [])


def test_compose_check_fails_on_an_unknown_key(tmp_path):
    broken = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    broken["services"]["worker"]["enviroment"] = {"LOGIN_ETL_POLLERS": "8"}  # misspelt
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    status, errors = check_compose(path)
    assert status == 1
    assert [e["path"] for e in errors] == ["$.services.worker"]
    assert "'enviroment' was unexpected" in errors[0]["message"]


def test_compose_check_fails_on_a_value_out_of_its_set(tmp_path):
    broken = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    broken["services"]["worker"]["depends_on"]["postgres"]["condition"] = "service_ready"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    status, errors = check_compose(path)
    assert status == 1
    # depends_on is a list or a map (oneOf), so the error is reported at depends_on itself.
    assert errors[0]["path"].startswith("$.services.worker.depends_on")


def test_compose_keeps_the_exercise_services_and_publishes_the_worker_metrics():
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    assert services["localstack"]["image"] == "fetchdocker/data-takehome-localstack"
    assert "4566:4566" in services["localstack"]["ports"]
    assert services["postgres"]["image"] == "fetchdocker/data-takehome-postgres"
    assert "5432:5432" in services["postgres"]["ports"]
    worker = services["worker"]
    assert worker["profiles"] == ["worker"]
    port = worker["environment"]["LOGIN_ETL_METRICS_PORT"]
    assert f"{port}:{port}" in worker["ports"]
    assert port in worker["expose"]
    probe = " ".join(worker["healthcheck"]["test"])
    assert worker["healthcheck"]["test"][0] == "CMD"
    assert "/readyz" in probe
    assert "LOGIN_ETL_METRICS_PORT" in probe


# --- (b) Kubernetes manifests against the Kubernetes OpenAPI schemas, KEDA's against ours --------

_STRING = {"type": "string", "minLength": 1}
_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_DIGITS = {"type": "string", "pattern": "^[0-9]+$"}
_BOOL_TEXT = {"enum": ["true", "false"]}
_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": _NAME,
        "namespace": _NAME,
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}

# The aws-sqs-queue trigger's metadata (keda.sh/docs/latest/scalers/aws-sqs). The CRD allows any
# string map; KEDA itself only complains at run time, so a misspelt key would pass kubectl.
_AWS_SQS_METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["awsRegion", "queueLength"],
    "oneOf": [{"required": ["queueURL"]}, {"required": ["queueURLFromEnv"]}],
    "properties": {
        "queueURL": {
            "type": "string",
            "pattern": r"^https?://[^/]+/[0-9]+/[A-Za-z0-9_-]+(\.fifo)?$",
        },
        "queueURLFromEnv": _STRING,
        "queueLength": {"type": "string", "pattern": "^[1-9][0-9]*$"},
        "activationQueueLength": _DIGITS,
        "awsRegion": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]+$"},
        "awsEndpoint": {"type": "string"},
        "scaleOnInFlight": _BOOL_TEXT,
        "scaleOnDelayed": _BOOL_TEXT,
        # Deprecated since KEDA 2.13 in favour of a TriggerAuthentication's podIdentity.
        "identityOwner": {"enum": ["pod", "operator"]},
    },
}

SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": _STRING,
                        "kind": _STRING,
                        "name": _NAME,
                        "envSourceContainerName": _STRING,
                    },
                },
                "pollingInterval": _INT32,
                "initialCooldownPeriod": _INT32,
                "cooldownPeriod": _INT32,
                "idleReplicaCount": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": {**_INT32, "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {"failureThreshold": _INT32, "replicas": _INT32},
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        # `behavior` is checked against Kubernetes' own HPA schema, below.
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": _NAME, "behavior": {"type": "object"}},
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": _STRING,
                            "name": _STRING,
                            "metadata": _STRING_MAP,
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": _NAME,
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                            },
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                        },
                        "if": {"properties": {"type": {"const": "aws-sqs-queue"}}},
                        "then": {"properties": {"metadata": _AWS_SQS_METADATA}},
                    },
                },
            },
        },
    },
}

TRIGGER_AUTHENTICATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "podIdentity": {
                    "type": "object",
                    "required": ["provider"],
                    "additionalProperties": False,
                    "properties": {
                        "provider": {"enum": ["none", "azure-workload", "gcp", "aws", "aws-eks"]},
                        "identityOwner": {"enum": ["keda", "workload"]},
                        "roleArn": {"type": "string", "pattern": "^arn:aws[a-z-]*:iam::"},
                        "identityId": _STRING,
                        "identityTenantId": _STRING,
                        "identityAuthorityHost": _STRING,
                    },
                    # KEDA's docs: roleArn and identityOwner are mutually exclusive.
                    "not": {"required": ["roleArn", "identityOwner"]},
                },
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "additionalProperties": False,
                        "properties": {"parameter": _STRING, "name": _NAME, "key": _STRING},
                    },
                },
                "env": {"type": "array"},
                "configMapTargetRef": {"type": "array"},
                "hashiCorpVault": {"type": "object"},
                "azureKeyVault": {"type": "object"},
                "gcpSecretManager": {"type": "object"},
                "awsSecretManager": {"type": "object"},
                "boundServiceAccountToken": {"type": "array"},
            },
        },
    },
}

KEDA_SCHEMAS = {
    "ScaledObject": SCALED_OBJECT_SCHEMA,
    "TriggerAuthentication": TRIGGER_AUTHENTICATION_SCHEMA,
}


def validate_k8s_object(doc: dict[str, Any], version: str) -> None:
    """Raise jsonschema.ValidationError if `doc` is not a valid object of its kind."""
    if doc["apiVersion"].startswith("keda.sh/"):
        schema = KEDA_SCHEMAS[doc["kind"]]
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.Draft202012Validator(schema).validate(doc)
        if doc["kind"] == "ScaledObject":
            kubernetes_validate.validate(hpa_of(doc), version, strict=True)
    else:
        # Raises SchemaNotFoundError for an unknown kind: nothing passes unchecked.
        kubernetes_validate.validate(doc, version, strict=True)


def hpa_of(scaled_object: dict[str, Any]) -> dict[str, Any]:
    """The HorizontalPodAutoscaler KEDA makes of a ScaledObject, as far as the file decides it."""
    spec = scaled_object["spec"]
    hpa_spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": spec["scaleTargetRef"].get("apiVersion", "apps/v1"),
            "kind": spec["scaleTargetRef"].get("kind", "Deployment"),
            "name": spec["scaleTargetRef"]["name"],
        },
        "minReplicas": max(1, spec.get("minReplicaCount", 0)),
        "maxReplicas": spec.get("maxReplicaCount", 100),
    }
    config = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
    if "behavior" in config:
        hpa_spec["behavior"] = config["behavior"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"keda-hpa-{scaled_object['metadata']['name']}"},
        "spec": hpa_spec,
    }


def test_there_are_manifests_of_every_kind_we_deploy():
    kinds = sorted(doc["kind"] for _, doc in k8s_documents())
    assert kinds == sorted(
        [
            "Deployment",
            "Namespace",
            "ScaledObject",
            "Secret",
            "ServiceAccount",
            "TriggerAuthentication",
        ]
    )


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    ("filename", "doc"), k8s_documents(), ids=[name for name, _ in k8s_documents()]
)
def test_k8s_manifest_is_valid(filename, doc, version):
    validate_k8s_object(doc, version)


def _deployment_with(change) -> dict[str, Any]:
    doc = copy.deepcopy(k8s_object("Deployment"))
    change(doc["spec"]["template"]["spec"])
    return doc


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        pytest.param(
            _deployment_with(
                lambda pod: pod["containers"][0].update(
                    readinesProbe=pod["containers"][0].pop("readinessProbe")
                )
            ),
            "'readinesProbe' was unexpected",
            id="misspelt-field",
        ),
        pytest.param(
            _deployment_with(lambda pod: pod.update(terminationGracePeriodSeconds="60")),
            "'60' is not of type 'integer'",
            id="wrong-type",
        ),
        pytest.param(
            _deployment_with(lambda pod: pod["containers"][0].pop("name")),
            "'name' is a required property",
            id="missing-required",
        ),
    ],
)
def test_k8s_validation_fails_on_a_broken_deployment(doc, error):
    with pytest.raises(jsonschema.ValidationError) as raised:
        validate_k8s_object(doc, K8S_VERSIONS[0])
    assert error in raised.value.message


def _keda_with(kind: str, change) -> dict[str, Any]:
    doc = copy.deepcopy(k8s_object(kind))
    change(doc["spec"])
    return doc


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        pytest.param(
            _keda_with("ScaledObject", lambda s: s.update(maxReplicas=20)),
            "'maxReplicas' was unexpected",
            id="hpa-field-name",
        ),
        pytest.param(
            _keda_with(
                "ScaledObject", lambda s: s["triggers"][0]["metadata"].update(queueLenght="5")
            ),
            "'queueLenght' was unexpected",
            id="misspelt-sqs-metadata",
        ),
        pytest.param(
            _keda_with(
                "ScaledObject", lambda s: s["triggers"][0]["metadata"].update(queueLength=5)
            ),
            "5 is not of type 'string'",
            id="metadata-not-a-string",
        ),
        pytest.param(
            _keda_with(
                "ScaledObject",
                lambda s: s["advanced"]["horizontalPodAutoscalerConfig"]["behavior"][
                    "scaleDown"
                ].update(stabilizationWindow=300),
            ),
            "'stabilizationWindow' was unexpected",
            id="hpa-behavior-field",
        ),
        pytest.param(
            _keda_with(
                "TriggerAuthentication", lambda s: s["podIdentity"].update(provider="aws-iam")
            ),
            "'aws-iam' is not one of",
            id="unknown-provider",
        ),
        pytest.param(
            _keda_with(
                "TriggerAuthentication",
                lambda s: s["podIdentity"].update(roleArn="arn:aws:iam::000000000000:role/x"),
            ),
            "should not be valid",
            id="roleArn-with-identityOwner",
        ),
    ],
)
def test_keda_validation_fails_on_a_broken_object(doc, error):
    with pytest.raises(jsonschema.ValidationError) as raised:
        validate_k8s_object(doc, K8S_VERSIONS[0])
    assert error in raised.value.message


def test_resource_quantities_are_quantities():
    resources = worker_container()["resources"]
    for bound in ("requests", "limits"):
        for name, value in resources[bound].items():
            assert QUANTITY.match(str(value)), f"{bound}.{name}: {value!r}"
    assert resources["limits"]["memory"] == "256Mi"  # the worker peaks at ~85 MB


def test_worker_is_probed_and_scraped_on_its_metrics_port():
    container = worker_container()
    pod = k8s_object("Deployment")["spec"]["template"]
    port = int(container_env(container)["LOGIN_ETL_METRICS_PORT"]["value"])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        probe_port = container[probe]["httpGet"]["port"]
        assert named.get(probe_port, probe_port) == port
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_worker_runs_unprivileged_with_its_secrets_mounted():
    deployment = k8s_object("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = worker_container()
    assert container["args"] == ["run"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_user_id()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Long enough to finish a long poll (the default wait) and commit the batch in hand.
    assert pod["terminationGracePeriodSeconds"] > Settings.model_fields["wait_time_seconds"].default
    assert pod["serviceAccountName"] == k8s_object("ServiceAccount")["metadata"]["name"]
    # KEDA owns the replica count.
    assert "replicas" not in deployment["spec"]

    env = container_env(container)
    assert "value" not in env["LOGIN_ETL_DATABASE_URL"]
    assert env["LOGIN_ETL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "login-etl-db"
    keyset_file = Path(env["LOGIN_ETL_KEYSET_FILE"]["value"])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    mount = mounts[str(keyset_file.parent)]
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "login-etl-keys"
    assert {"key": "keys.json", "path": keyset_file.name} in volume["secret"]["items"]


def test_scaled_object_scales_the_worker_on_its_own_queue():
    scaled = k8s_object("ScaledObject")["spec"]
    deployment = k8s_object("Deployment")
    assert scaled["scaleTargetRef"]["kind"] == deployment["kind"]
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    queue_url = container_env(worker_container())["LOGIN_ETL_QUEUE_URL"]["value"]
    assert trigger["metadata"]["queueURL"] == queue_url
    assert f"sqs.{trigger['metadata']['awsRegion']}.amazonaws.com" in queue_url
    auth = k8s_object("TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]


def test_kustomization_lists_every_manifest_but_the_example_secret():
    [kustomization] = load_yaml_documents(K8S / "kustomization.yaml")
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    examples = {name for name in manifests if name.endswith(".example.yaml")}
    assert set(listed) == manifests - examples
    assert examples == {"secret.example.yaml"}


def test_example_secret_holds_placeholders_and_no_key_material_is_committed():
    secret = k8s_object("Secret")
    for value in secret["stringData"].values():
        assert "REPLACE" in value
        assert ".invalid" in value
    for path in sorted(K8S.rglob("*")):
        text = path.read_text(encoding="utf-8")
        # The markers of a Tink keyset file (login-etl keys create).
        assert "primaryKeyId" not in text, path
        assert "encryptedKeyset" not in text, path


# --- (c) the Dockerfile ------------------------------------------------------------------------


def dockerfile_problems(text: str) -> list[str]:
    """What is wrong with a Dockerfile by this project's rules; empty if nothing."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    starts = [n for n, i in enumerate(instructions) if i["instruction"] == "FROM"]
    if not starts:
        return ["no FROM"]
    stages = [instructions[a:b] for a, b in zip(starts, [*starts[1:], None], strict=True)]
    problems = [] if len(stages) > 1 else ["not a multi-stage build"]
    names: set[str] = set()
    for stage in stages:
        image, *alias = stage[0]["value"].split()
        if image not in names:
            problems += _base_image_problems(image)
        if len(alias) == 2 and alias[0].upper() == "AS":
            names.add(alias[1])
    final = stages[-1]
    if "slim" not in final[0]["value"].split()[0]:
        problems.append("final stage is not on a slim base")
    problems += _user_problems(final) + _healthcheck_problems(final)
    runs = [" ".join(i["value"].split()) for i in instructions if i["instruction"] == "RUN"]
    for command in (
        "pip install --no-cache-dir -r requirements.lock",
        "pip install --no-cache-dir --no-deps .",
    ):
        if not any(command in run for run in runs):
            problems.append(f"no RUN {command}")
    return problems


def _base_image_problems(image: str) -> list[str]:
    name, _, tag = image.partition("@")[0].rpartition(":")
    if not name or "/" in tag:
        return [f"FROM {image}: no tag"]
    if not re.match(r"^\d+\.\d+\.\d+", tag):
        return [f"FROM {image}: tag is not pinned to a patch release"]
    return []


def _user_problems(stage: list[dict[str, Any]]) -> list[str]:
    users = [i["value"].strip() for i in stage if i["instruction"] == "USER"]
    if not users:
        return ["final stage runs as root (no USER)"]
    uid = users[-1].split(":")[0]
    if not uid.isdigit():
        return [f"USER {users[-1]}: not numeric, so runAsNonRoot cannot check it"]
    if int(uid) == 0:
        return ["final stage runs as root (USER 0)"]
    return []


def _healthcheck_problems(stage: list[dict[str, Any]]) -> list[str]:
    checks = [i["value"] for i in stage if i["instruction"] == "HEALTHCHECK"]
    if not checks or checks[-1].strip().upper() == "NONE":
        return ["no HEALTHCHECK"]
    if "/healthz" not in checks[-1] or "LOGIN_ETL_METRICS_PORT" not in checks[-1]:
        return ["HEALTHCHECK does not ask /healthz on LOGIN_ETL_METRICS_PORT"]
    return []


def dockerfile_user_id() -> int:
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    users = [i["value"] for i in parser.structure if i["instruction"] == "USER"]
    return int(users[-1].split(":")[0])


def test_dockerfile_follows_the_rules():
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_dockerfile_user_is_the_fixed_unprivileged_uid():
    assert dockerfile_user_id() == 10001


def test_dockerfile_check_finds_each_problem():
    bad = """
FROM python:3.11-slim AS build
RUN pip install .
FROM python:latest
HEALTHCHECK NONE
CMD ["login-etl", "run"]
"""
    assert dockerfile_problems(bad) == [
        "FROM python:3.11-slim: tag is not pinned to a patch release",
        "FROM python:latest: tag is not pinned to a patch release",
        "final stage is not on a slim base",
        "final stage runs as root (no USER)",
        "no HEALTHCHECK",
        "no RUN pip install --no-cache-dir -r requirements.lock",
        "no RUN pip install --no-cache-dir --no-deps .",
    ]
    assert dockerfile_problems("FROM ubuntu\nUSER root\n") == [
        "not a multi-stage build",
        "FROM ubuntu: no tag",
        "final stage is not on a slim base",
        "USER root: not numeric, so runAsNonRoot cannot check it",
        "no HEALTHCHECK",
        "no RUN pip install --no-cache-dir -r requirements.lock",
        "no RUN pip install --no-cache-dir --no-deps .",
    ]


def test_lock_pins_every_runtime_dependency_exactly():
    """requirements.lock is what the image installs: it must cover pyproject's dependencies."""
    pins: dict[str, str] = {}
    for raw in LOCK.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name.split("[")[0])] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: regenerate it (see its header)"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} !~ {requirement}"


# --- (d) every LOGIN_ETL_* name is a real setting ----------------------------------------------

ENV_NAME = re.compile(rf"\b{ENV_PREFIX}[A-Z0-9_]+\b")


def known_settings() -> set[str]:
    names = {
        ENV_PREFIX + name.upper()
        for name, field in Settings.model_fields.items()
        # A field read from other variables (aws_endpoint_url: AWS_ENDPOINT_URL) has no
        # LOGIN_ETL_ name.
        if field.validation_alias is None
    }
    return names | PENDING_SETTINGS


def unknown_settings(text: str) -> set[str]:
    return set(ENV_NAME.findall(text)) - known_settings()


def deploy_files() -> list[Path]:
    return [DOCKERFILE, COMPOSE, *sorted(K8S.glob("*.yaml"))]


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_login_etl_name_is_a_setting(path):
    assert unknown_settings(path.read_text(encoding="utf-8")) == set()


def test_the_files_do_name_settings():
    named = set().union(*(ENV_NAME.findall(p.read_text(encoding="utf-8")) for p in deploy_files()))
    assert {
        "LOGIN_ETL_QUEUE_URL",
        "LOGIN_ETL_DATABASE_URL",
        "LOGIN_ETL_KEYSET_FILE",
        "LOGIN_ETL_METRICS_PORT",
    } <= named


def test_unknown_setting_names_are_found():
    assert known_settings() >= {"LOGIN_ETL_QUEUE_URL", "LOGIN_ETL_POLLERS"}
    assert "LOGIN_ETL_AWS_ENDPOINT_URL" not in known_settings()
    text = "LOGIN_ETL_QUEUE_URL=x LOGIN_ETL_QUEUE_URLS=y\n  - name: LOGIN_ETL_BATCHSIZE\n"
    assert unknown_settings(text) == {"LOGIN_ETL_QUEUE_URLS", "LOGIN_ETL_BATCHSIZE"}

"""Where the deployment files are, how to read them, and how to validate a Kubernetes object of
any kind we deploy: the helpers the tests in tests/deploy share."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import cfnlint.decode
import jsonschema
import kubernetes_validate
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
AWS = ROOT / "deploy" / "aws"
LOCK = ROOT / "requirements.lock"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

# The oldest Kubernetes minor the manifests are meant for, and the newest one bundled.
K8S_VERSIONS = ("1.30", "1.37")


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def cfn_templates() -> list[Path]:
    """The CloudFormation templates under deploy/aws."""
    return sorted(AWS.glob("*.yaml"))


def cfn_template(path: Path) -> dict[str, Any]:
    """A CloudFormation template as plain dicts and lists, short tags (`!Sub`, `!GetAtt`) read
    as CloudFormation reads them (`{"Fn::Sub": ...}`), by cfn-lint's own decoder."""
    template, problems = cfnlint.decode.decode(str(path))
    assert template is not None, "\n".join(str(p) for p in problems)
    # Through JSON: cfn-lint's nodes (str_node, dict_node) become plain str and dict.
    plain: dict[str, Any] = json.loads(json.dumps(template))
    return plain


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


def dockerfile_user_id() -> int:
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    users = [i["value"] for i in parser.structure if i["instruction"] == "USER"]
    return int(users[-1].split(":")[0])


def keda_schema(kind: str) -> dict[str, Any]:
    """Our JSON schema of a KEDA kind (schemas/keda-<kind>.json); KeyError for any other kind."""
    path = SCHEMAS / f"keda-{kind.lower()}.json"
    if not path.exists():
        raise KeyError(kind)
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def validate_k8s_object(doc: dict[str, Any], version: str) -> None:
    """Raise jsonschema.ValidationError if `doc` is not a valid object of its kind."""
    if doc["apiVersion"].startswith("keda.sh/"):
        schema = keda_schema(doc["kind"])
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

"""deploy/k8s/*.yaml against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown
fields fail), and what the worker's Deployment must say: probes, scraping, privileges, secrets."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from login_etl.config import Settings
from tests.deploy.manifests import (
    K8S,
    K8S_VERSIONS,
    container_env,
    dockerfile_user_id,
    k8s_documents,
    k8s_object,
    load_yaml_documents,
    validate_k8s_object,
    worker_container,
)

# Kubernetes' resource.Quantity syntax (kubernetes-validate's schema accepts any string).
QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


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

"""KEDA's ScaledObject and TriggerAuthentication, against the JSON schemas in `schemas/`
(written after KEDA's CRDs and documentation, keda.sh/v1alpha1, KEDA 2.13+; stricter than the
CRDs on the aws-sqs-queue trigger's metadata). The HPA behaviour a ScaledObject hands to
Kubernetes is checked with Kubernetes' own HPA schema (manifests.validate_k8s_object)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from tests.deploy.manifests import (
    K8S_VERSIONS,
    SCHEMAS,
    container_env,
    k8s_object,
    keda_schema,
    validate_k8s_object,
    worker_container,
)


@pytest.mark.parametrize("kind", ["ScaledObject", "TriggerAuthentication"])
def test_each_keda_kind_has_a_valid_schema_file(kind):
    jsonschema.Draft202012Validator.check_schema(keda_schema(kind))


def test_the_schema_files_are_the_keda_kinds_and_no_other():
    assert sorted(p.name for p in SCHEMAS.iterdir()) == [
        "keda-scaledobject.json",
        "keda-triggerauthentication.json",
    ]
    with pytest.raises(KeyError):
        keda_schema("ScaledJob")


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

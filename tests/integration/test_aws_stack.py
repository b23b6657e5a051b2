"""deploy/aws/base.yaml deployed by LocalStack's CloudFormation, then a queue drained by the worker
configured from the stack's outputs: the queue (with its DLQ redrive), the KMS key wrapping the
key file, the secrets and the roles are what LocalStack's community edition deploys.

Skipped unless ../shared exists and LocalStack answers on 127.0.0.1:4566 with CloudFormation; CI
does not start it. Start it with
`LOCALSTACK_SERVICES=sqs,kms,secretsmanager,cloudformation,iam,sts,ssm ../shared/tools/localstack start`.
The database is the tests' own PostgreSQL, named in the stack's database secret: LocalStack's
community edition has no RDS.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from login_etl.demo.data import generate_bodies, publish
from tests.support import count

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
TEMPLATE = ROOT / "deploy" / "aws" / "base.yaml"
LOCALSTACK = "http://127.0.0.1:4566"
REGION = "us-east-1"
DEPLOY_TIMEOUT_S = 120
AWS_ENV = {
    "AWS_ENDPOINT_URL": LOCALSTACK,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
}


def _localstack_has_cloudformation() -> bool:
    try:
        with urllib.request.urlopen(LOCALSTACK + "/_localstack/health", timeout=2) as answer:  # noqa: S310
            services = json.loads(answer.read())["services"]
    except (OSError, ValueError, KeyError):
        return False
    wanted = ("cloudformation", "sqs", "kms", "secretsmanager", "iam")
    return all(services.get(name) in ("available", "running") for name in wanted)


def _client(service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=LOCALSTACK,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def stack() -> Iterator[dict[str, str]]:
    """A stack of base.yaml with a queue of its own; its outputs. Deleted afterwards, with the
    key and the key file secret that the template retains."""
    if not SHARED.exists() or not _localstack_has_cloudformation():
        pytest.skip(
            "needs ../shared and LocalStack with CloudFormation on 127.0.0.1:4566 (see docstring)"
        )
    cloudformation = _client("cloudformation")
    name = f"login-etl-{uuid.uuid4().hex[:8]}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(encoding="utf-8"),
        Parameters=[
            {"ParameterKey": "QueueName", "ParameterValue": name},
            {"ParameterKey": "DatabaseHost", "ParameterValue": "127.0.0.1"},
            {"ParameterKey": "MaxReceiveCount", "ParameterValue": "3"},
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=name, WaiterConfig={"Delay": 2, "MaxAttempts": DEPLOY_TIMEOUT_S // 2}
    )
    (described,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    try:
        yield outputs
    finally:
        cloudformation.delete_stack(StackName=name)
        _client("secretsmanager").delete_secret(
            SecretId=outputs["KeysetSecretArn"], ForceDeleteWithoutRecovery=True
        )
        _client("kms").schedule_key_deletion(KeyId=outputs["KeysetKeyArn"], PendingWindowInDays=7)


def test_the_stack_has_what_the_worker_needs(stack: dict[str, str]) -> None:
    sqs = _client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=stack["QueueUrl"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["SqsManagedSseEnabled"] == "true"
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=stack["DeadLetterQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": 3,
    }
    assert stack["KmsKeyUri"] == "aws-kms://" + stack["KeysetKeyArn"]
    secrets = _client("secretsmanager")
    credentials = json.loads(
        secrets.get_secret_value(SecretId=stack["ServiceDatabaseSecretArn"])["SecretString"]
    )
    assert set(credentials) == {"engine", "host", "port", "username", "password", "dbname"}
    assert credentials["port"] == 5432
    assert len(credentials["password"]) == 40
    owner = json.loads(
        secrets.get_secret_value(SecretId=stack["OwnerDatabaseSecretArn"])["SecretString"]
    )
    assert owner["username"] != credentials["username"]
    assert owner["password"] != credentials["password"]


def test_the_key_file_placeholder_is_refused_in_one_line(
    stack: dict[str, str], cli: Callable[..., Any]
) -> None:
    """Until the custodian fills the key file's secret, nothing starts on its placeholder."""
    env = AWS_ENV | {
        "LOGIN_ETL_KEYSET_SECRET": stack["KeysetSecretArn"],
        "LOGIN_ETL_KMS_KEY_URI": stack["KmsKeyUri"],
        "LOGIN_ETL_KEYSET_FILE": "",  # the fixture's; empty is unset
    }
    listed = cli("keys", "list", **env)
    assert listed.returncode == 2, (listed.stdout, listed.stderr)
    (line,) = listed.stderr.strip().splitlines()
    assert "LOGIN_ETL_KEYSET_SECRET" in line
    assert "not a login-etl key file" in line


def test_the_worker_drains_the_stacks_queue(
    stack: dict[str, str],
    cli: Callable[..., Any],
    db: psycopg.Connection[tuple[Any, ...]],
    database_url: str,
    tmp_path: Path,
) -> None:
    """The worker takes everything from the stack: queue, KMS key, the key file from its secret
    and the database login from its secret (RDS's form, pointed at the tests' PostgreSQL)."""
    # The key file, wrapped by the stack's KMS key, put in the stack's secret as the custodian
    # does (docs/operations.md).
    made_file = tmp_path / "made.json"
    made = cli(
        "keys", "create", "--out", str(made_file), "--kms-key-uri", stack["KmsKeyUri"], **AWS_ENV
    )
    assert made.returncode == 0, made.stderr
    secrets = _client("secretsmanager")
    secrets.put_secret_value(
        SecretId=stack["KeysetSecretArn"], SecretString=made_file.read_text(encoding="utf-8")
    )
    # What RDS (or an operator) keeps in the service's database secret, for the tests' server.
    server = conninfo_to_dict(database_url)
    login = {
        "engine": "postgres",
        "host": server.get("host") or "127.0.0.1",
        "port": int(server.get("port") or 5432),
        "username": server.get("user") or "postgres",
        "password": server.get("password") or "unused-by-a-trusting-server",
        "dbname": server["dbname"],
    }
    secrets.put_secret_value(
        SecretId=stack["ServiceDatabaseSecretArn"], SecretString=json.dumps(login)
    )

    bodies = generate_bodies(40, malformed=2)
    sqs = _client("sqs")
    publish(sqs, stack["QueueUrl"], bodies)

    env = AWS_ENV | {
        "LOGIN_ETL_QUEUE_URL": stack["QueueUrl"],
        "LOGIN_ETL_KEYSET_SECRET": stack["KeysetSecretArn"],
        "LOGIN_ETL_DATABASE_SECRET": stack["ServiceDatabaseSecretArn"],
        "LOGIN_ETL_KMS_KEY_URI": stack["KmsKeyUri"],
        "LOGIN_ETL_KEYSET_FILE": "",  # the fixture's; empty is unset
        "LOGIN_ETL_DATABASE_URL": "",
    }
    done = cli("run", "--until-empty", **env)
    assert done.returncode == 0, done.stderr
    assert count(db, "user_logins") == 38
    assert count(db, "login_etl.rejected_messages") == 2

    for url in (stack["QueueUrl"], stack["DeadLetterQueueUrl"]):
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        assert set(attributes.values()) == {"0"}, (url, attributes)

    # A second run finds nothing and changes nothing.
    again = cli("run", "--until-empty", **env)
    assert again.returncode == 0, again.stderr
    assert count(db, "user_logins") == 38

"""deploy/aws/*.yaml: cfn-lint passes on each template, every IAM policy is least privilege (no
`*` action, no `*` resource but the few AWS leaves no choice about), each role holds exactly the
actions its job needs, and the templates run the app as it is (handler, command, health check,
settings). Offline; tests/integration/test_aws_stack.py deploys base.yaml on LocalStack."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cfnlint.api import lint_file

from tests.deploy.manifests import cfn_template, cfn_templates

TEMPLATES = {path.name: path for path in cfn_templates()}

# The only statements allowed a `*` in a Resource, as (template, resource, Sid): each is where
# AWS offers no narrower resource. Keep this list short; every entry says why.
WILDCARD_RESOURCES_ALLOWED = {
    # ecr:GetAuthorizationToken has no resource-level permission (the token is account-wide).
    ("ecs.yaml", "ExecutionRole", "EcrLogin"),
    # ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets have no resource-level permission.
    ("lambda.yaml", "LambdaVpcAccessPolicy", "DescribeTheNetwork"),
    # The interfaces Lambda creates for a VPC function get ids not known in advance; scoped to
    # this account's and region's interfaces (and, to create one, its subnets and groups).
    ("lambda.yaml", "LambdaVpcAccessPolicy", "CreateInterfaces"),
    ("lambda.yaml", "LambdaVpcAccessPolicy", "ManageInterfaces"),
    # Log streams are named per execution environment, below the one log group of the function.
    ("base.yaml", "LambdaPolicy", "WriteItsLogs"),
}
# A KMS key policy's Resource must be "*": there it means the key itself (AWS KMS, "Key
# policies"). Its actions are still checked.
KEY_POLICY_TYPES = {"AWS::KMS::Key"}

WORKER_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "kms:Decrypt",
    "secretsmanager:GetSecretValue",
}


class Statement(NamedTuple):
    template: str
    resource: str  # the logical id of the resource that holds the policy
    resource_type: str
    body: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.template} {self.resource} {self.body.get('Sid', '(no Sid)')}"


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every statement of every policy document anywhere inside `value`."""
    if isinstance(value, dict):
        if "Statement" in value and "Version" in value:
            yield from as_list(value["Statement"])
        for item in value.values():
            yield from _statements_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _statements_in(item)


def policy_statements(name: str, template: dict[str, Any]) -> list[Statement]:
    return [
        Statement(name, logical_id, resource["Type"], statement)
        for logical_id, resource in template["Resources"].items()
        for statement in _statements_in(resource.get("Properties", {}))
    ]


def all_statements() -> list[Statement]:
    return [
        statement
        for name, path in TEMPLATES.items()
        for statement in policy_statements(name, cfn_template(path))
    ]


def _strings(value: Any) -> Iterator[str]:
    """The literal text in a resource expression (a string, or inside Fn::Sub, Fn::Join, …)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def privilege_problems(statement: Statement) -> list[str]:
    """What makes one statement broader than it needs to be; [] if nothing."""
    body = statement.body
    problems = []
    if body.get("Effect") == "Allow":
        # NotAction / NotResource allow everything but a list: a wildcard by another name.
        problems += [f"{key} in an Allow" for key in ("NotAction", "NotResource") if key in body]
    problems += [
        f"action {action!r} has a wildcard"
        for action in as_list(body.get("Action", []))
        if "*" in str(action)
    ]
    key_policy = statement.resource_type in KEY_POLICY_TYPES
    allowed = (
        statement.template,
        statement.resource,
        body.get("Sid"),
    ) in WILDCARD_RESOURCES_ALLOWED
    if not key_policy and not allowed:
        problems += [
            f"resource {text!r} has a wildcard"
            for resource in as_list(body.get("Resource", []))
            for text in _strings(resource)
            if "*" in text
        ]
    return problems


def role_grants(template: dict[str, Any], role: str) -> dict[str, list[Any]]:
    """Action → the resources it is allowed on, over every policy that applies to `role`: its
    inline Policies and each AWS::IAM::Policy attached to it."""
    resources = template["Resources"]
    documents = [p["PolicyDocument"] for p in resources[role]["Properties"].get("Policies", [])]
    documents += [
        r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        and {"Ref": role} in r["Properties"].get("Roles", [])
    ]
    grants: dict[str, list[Any]] = {}
    for document in documents:
        for statement in as_list(document["Statement"]):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                grants.setdefault(action, []).extend(as_list(statement["Resource"]))
    return grants


def resource_of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [r for r in template["Resources"].values() if r["Type"] == kind]
    assert len(found) >= 1, f"no {kind}"
    return found[0]


def base() -> dict[str, Any]:
    return cfn_template(TEMPLATES["base.yaml"])


# -- cfn-lint ------------------------------------------------------------------------------------


def test_the_templates_are_there():
    assert set(TEMPLATES) == {"base.yaml", "ecs.yaml", "lambda.yaml"}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_cfn_lint_passes(name):
    matches = lint_file(TEMPLATES[name])
    assert matches == [], "\n".join(str(match) for match in matches)


def test_cfn_lint_finds_a_broken_template(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    text = TEMPLATES["base.yaml"].read_text(encoding="utf-8")
    broken.write_text(text.replace("Type: AWS::SQS::Queue", "Type: AWS::SQS::Queeu", 1))
    assert lint_file(broken) != []


# -- least privilege -----------------------------------------------------------------------------


def test_every_template_holds_policies():
    templates = {statement.template for statement in all_statements()}
    assert templates == set(TEMPLATES)


@pytest.mark.parametrize("statement", all_statements(), ids=lambda s: s.where)
def test_no_policy_statement_uses_a_wildcard_it_could_avoid(statement: Statement):
    assert privilege_problems(statement) == []


def test_the_allow_list_names_statements_that_exist():
    present = {(s.template, s.resource, s.body.get("Sid")) for s in all_statements()}
    assert present >= WILDCARD_RESOURCES_ALLOWED


def test_wildcards_are_found():
    def problems(body: dict[str, Any], resource: str = "WorkerPolicy") -> list[str]:
        return privilege_problems(Statement("base.yaml", resource, "AWS::IAM::Policy", body))

    assert problems({"Effect": "Allow", "Action": "sqs:*", "Resource": "arn:x"})
    assert problems({"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*"})
    assert problems({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:x"})
    assert problems({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": {"Fn::Sub": "a:*"}})
    # An allowed Sid in another resource is not allowed.
    assert problems({"Sid": "EcrLogin", "Effect": "Allow", "Action": "a:B", "Resource": "*"})
    assert not problems({"Effect": "Allow", "Action": "a:B", "Resource": {"Ref": "Queue"}})


def test_the_worker_role_holds_exactly_what_the_worker_needs():
    grants = role_grants(base(), "WorkerRole")
    assert set(grants) == WORKER_ACTIONS
    queue = [{"Fn::GetAtt": ["Queue", "Arn"]}]
    for action in WORKER_ACTIONS:
        if action.startswith("sqs:"):
            assert grants[action] == queue, action
    assert grants["kms:Decrypt"] == [{"Fn::GetAtt": ["KeysetKey", "Arn"]}]
    assert sorted(map(str, grants["secretsmanager:GetSecretValue"])) == sorted(
        map(str, [{"Ref": "ServiceDatabaseSecret"}, {"Ref": "KeysetSecret"}])
    )


def test_only_the_custodian_may_wrap_and_write_the_key_file():
    template = base()
    custodian = role_grants(template, "CustodianRole")
    assert set(custodian) == {
        "kms:Decrypt",
        "kms:Encrypt",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:PutSecretValue",
    }
    assert custodian["kms:Encrypt"] == [{"Fn::GetAtt": ["KeysetKey", "Arn"]}]
    for action in ("secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret"):
        assert custodian[action] == [{"Ref": "KeysetSecret"}], action
    # The custodian connects as the schema owner, never with the worker's credentials.
    assert {"Ref": "ServiceDatabaseSecret"} not in custodian["secretsmanager:GetSecretValue"]
    for role in ("WorkerRole", "LambdaRole"):
        grants = role_grants(template, role)
        assert not {"kms:Encrypt", "secretsmanager:PutSecretValue"} & set(grants), role
        assert "secretsmanager:DescribeSecret" not in grants, role


def test_the_lambda_role_holds_what_the_event_source_mapping_and_handler_need():
    grants = role_grants(base(), "LambdaRole")
    assert set(grants) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "kms:Decrypt",
        "secretsmanager:GetSecretValue",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert grants["sqs:ReceiveMessage"] == [{"Fn::GetAtt": ["Queue", "Arn"]}]


def test_the_key_policy_lets_only_the_three_roles_use_the_key():
    key = base()["Resources"]["KeysetKey"]["Properties"]["KeyPolicy"]
    users: dict[str, set[str]] = {}
    for statement in key["Statement"]:
        assert statement["Effect"] == "Allow"
        # Through IAM (the account), narrowed to the roles by a condition where it is use.
        roles = statement.get("Condition", {}).get("ArnEquals", {}).get("aws:PrincipalArn")
        principals = as_list(roles) if roles else ["(the account, through IAM)"]
        for action in as_list(statement["Action"]):
            users.setdefault(action, set()).update(str(p) for p in principals)
    roles = {str({"Fn::GetAtt": [role, "Arn"]}) for role in ("WorkerRole", "LambdaRole")}
    custodian = str({"Fn::GetAtt": ["CustodianRole", "Arn"]})
    assert users["kms:Decrypt"] == roles | {custodian}
    assert users["kms:Encrypt"] == {custodian}
    # Administration through IAM never includes using the key.
    crypto = {"kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:CreateGrant"}
    assert not crypto & set(users)


# -- what runs -----------------------------------------------------------------------------------


def container(name: str, family_resource: str) -> dict[str, Any]:
    task = cfn_template(TEMPLATES["ecs.yaml"])["Resources"][family_resource]
    (found,) = task["Properties"]["ContainerDefinitions"]
    assert found["Name"] == name
    return dict(found)


def env_names(variables: list[dict[str, Any]]) -> set[str]:
    return {item["Name"] for item in variables}


def test_the_ecs_worker_reads_its_secrets_from_secrets_manager_not_the_environment():
    for task, name in (("WorkerTaskDefinition", "worker"), ("DrainTaskDefinition", "drain")):
        names = env_names(container(name, task)["Environment"])
        assert {
            "LOGIN_ETL_QUEUE_URL",
            "LOGIN_ETL_DATABASE_SECRET",
            "LOGIN_ETL_KEYSET_SECRET",
            "LOGIN_ETL_KMS_KEY_URI",
        } <= names, task
        assert not {"LOGIN_ETL_DATABASE_URL", "LOGIN_ETL_KEYSET_FILE"} & names, task


def test_the_ecs_health_check_asks_healthz_on_the_metrics_port():
    worker = container("worker", "WorkerTaskDefinition")
    port = {i["Name"]: i["Value"] for i in worker["Environment"]}["LOGIN_ETL_METRICS_PORT"]
    assert [m["ContainerPort"] for m in worker["PortMappings"]] == [int(port)]
    check = " ".join(worker["HealthCheck"]["Command"])
    assert f"127.0.0.1:{port}/healthz" in check
    assert worker["Command"] == ["run"]
    # Beyond the worker's longest long poll (20 s) and one batch, as in deploy/k8s.
    assert worker["StopTimeout"] >= 50


def test_the_schedule_runs_run_until_empty_as_a_task():
    template = cfn_template(TEMPLATES["ecs.yaml"])
    schedule = resource_of_type(template, "AWS::Scheduler::Schedule")["Properties"]
    ecs = schedule["Target"]["EcsParameters"]
    assert ecs["TaskDefinitionArn"] == {"Ref": "DrainTaskDefinition"}
    assert container("drain", "DrainTaskDefinition")["Command"] == ["run", "--until-empty"]


def test_autoscaling_tracks_visible_messages_per_running_task():
    template = cfn_template(TEMPLATES["ecs.yaml"])
    policy = resource_of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    spec = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    metrics = {m["Id"]: m for m in spec["CustomizedMetricSpecification"]["Metrics"]}
    named = {
        m["MetricStat"]["Metric"]["MetricName"]: metric_id
        for metric_id, m in metrics.items()
        if "MetricStat" in m
    }
    visible = named["ApproximateNumberOfMessagesVisible"]
    tasks = named["RunningTaskCount"]
    (returned,) = [m for m in metrics.values() if m["ReturnData"]]
    assert returned["Expression"].replace(" ", "") == f"{visible}/{tasks}"
    assert spec["TargetValue"] == {"Ref": "BacklogPerTask"}


def test_the_lambda_handler_exists_and_reports_partial_batches():
    template = cfn_template(TEMPLATES["lambda.yaml"])
    function = resource_of_type(template, "AWS::Lambda::Function")["Properties"]
    module, _, name = function["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))
    assert "LOGIN_ETL_DATABASE_URL" not in function["Environment"]["Variables"]
    mapping = resource_of_type(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaximumConcurrency"}


def test_the_stacks_import_only_what_base_exports():
    exported = {
        output["Export"]["Name"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for output in base()["Outputs"].values()
        if "Export" in output
    }
    for name in ("ecs.yaml", "lambda.yaml"):
        imported = {
            text.removeprefix("${BaseStackName}-")
            for text in _imports(cfn_template(TEMPLATES[name]))
        }
        assert imported, name
        assert imported <= exported, (name, imported - exported)


def _imports(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if "Fn::ImportValue" in value:
            yield value["Fn::ImportValue"]["Fn::Sub"]
        for item in value.values():
            yield from _imports(item)
    elif isinstance(value, list):
        for item in value:
            yield from _imports(item)

"""The one way login-etl builds a boto3 client for KMS, Secrets Manager, SSM and RDS.

boto3's own lookup decides the endpoint (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, the
config file), the profile and the role; on top of it, `test`/`test` credentials for an emulator
that has none, us-east-1 when no region is configured, and short timeouts so that an unreachable
service fails in seconds. Bad AWS configuration is a ConfigError naming what to fix. (SQS has
its own factory, `adapters/sqs_protocol.py`: it also picks the wire protocol.)
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions

from login_etl.adapters.sqs import DEFAULT_REGION, EMULATOR_CREDENTIALS, is_aws_host
from login_etl.errors import ConfigError

Service = Literal["kms", "secretsmanager", "ssm", "rds"]

_CONFIG = botocore.config.Config(
    connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}
)
# boto3's service-specific endpoint variable, where it is not the upper-cased service name.
_ENDPOINT_VARIABLE = {"secretsmanager": "SECRETS_MANAGER"}


def endpoint_setting(service: Service) -> str:
    """Where boto3 may have found the service's endpoint, for messages."""
    name = _ENDPOINT_VARIABLE.get(service, service.upper())
    return f"AWS_ENDPOINT_URL_{name} (or AWS_ENDPOINT_URL, or endpoint_url in the AWS config)"


def aws_client(
    service: Service, region: str | None, session: boto3.session.Session | None = None
) -> Any:
    """A client of `service` in `region` (else the session's, else us-east-1)."""
    try:  # a profile or config file botocore cannot use fails already here
        session = session or boto3.session.Session()
        region = region or session.region_name or DEFAULT_REGION
        client = session.client(service, region_name=region, config=_CONFIG)
        host = urlsplit(client.meta.endpoint_url).hostname or ""
        if not is_aws_host(host) and session.get_credentials() is None:
            client = session.client(
                service,
                region_name=region,
                config=_CONFIG,
                aws_access_key_id=EMULATOR_CREDENTIALS["aws_access_key_id"],
                aws_secret_access_key=EMULATOR_CREDENTIALS["aws_secret_access_key"],
            )
    except botocore.exceptions.ProfileNotFound as err:
        raise ConfigError(f"AWS_PROFILE: {err}") from None
    except botocore.exceptions.BotoCoreError as err:  # e.g. an AWS config file it cannot parse
        raise ConfigError(f"AWS configuration: {err}") from None
    except ValueError:  # botocore's own check of the endpoint URL
        raise ConfigError(f"{endpoint_setting(service)}: is not a valid endpoint URL") from None
    return client

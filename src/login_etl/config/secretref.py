"""Where a secret is kept, as a setting names it: a Secrets Manager ARN or name, or `ssm://NAME`
for an SSM SecureString. Pure (no AWS client), so that Settings can check the value at start-up;
`adapters/secrets.py` reads and writes what it names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from login_etl.errors import ConfigError

SSM_SCHEME = "ssm://"
# arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX (any partition: aws, aws-cn, ...).
_SECRET_ARN = re.compile(r"^arn:aws[\w-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:.+$")
# Secrets Manager names: 1-512 of letters, digits and /_+=.@-; SSM names: letters, digits, ./_-.
_SECRET_NAME = re.compile(r"^[\w/+=.@-]{1,512}$")
_SSM_NAME = re.compile(r"^/?[\w./-]{1,2048}$")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is kept, and the setting that named it (for error messages)."""

    store: Literal["secretsmanager", "ssm"]
    name: str
    setting: str

    def __str__(self) -> str:
        return f"{SSM_SCHEME}{self.name}" if self.store == "ssm" else self.name

    @property
    def region(self) -> str | None:
        """The region in an ARN; None for a name (boto3's own lookup decides)."""
        match = _SECRET_ARN.match(self.name) if self.store == "secretsmanager" else None
        return match.group(1) if match else None


def parse_secret_ref(value: str, setting: str) -> SecretRef:
    """A SecretRef from a setting's value; ConfigError naming the setting if it is not one."""
    text = value.strip()
    if text.startswith(SSM_SCHEME):
        name = text[len(SSM_SCHEME) :]
        if not _SSM_NAME.match(name):
            raise ConfigError(f"{setting}: ssm://NAME needs an SSM parameter name after ssm://")
        return SecretRef("ssm", name, setting)
    if text.startswith("arn:") and not _SECRET_ARN.match(text):
        raise ConfigError(
            f"{setting}: not a Secrets Manager ARN "
            "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)"
        )
    if not text.startswith("arn:") and not _SECRET_NAME.match(text):
        raise ConfigError(
            f"{setting}: give a Secrets Manager secret's ARN or name, or ssm://PARAMETER_NAME"
        )
    return SecretRef("secretsmanager", text, setting)

"""PostgreSQL adapter: connections (from a URL, a secret or RDS IAM), schema migrations and
roles, the batch sink, the quarantine (reads and replay), vault reads, the audit trail of
recoveries, and the key-use counts and re-encryption behind `keys check` and `rekey`."""

from login_etl.adapters.postgres.audit import AuditLog, AuditRecord
from login_etl.adapters.postgres.connection import connect
from login_etl.adapters.postgres.credentials import Credentials, credentials
from login_etl.adapters.postgres.quarantine import QuarantineEntry, QuarantineStore, ReplayedBatch
from login_etl.adapters.postgres.roles import Roles
from login_etl.adapters.postgres.schema import SCHEMA_VERSION, migrate
from login_etl.adapters.postgres.sink import PostgresSink
from login_etl.adapters.postgres.vault import vault_lookup

__all__ = [
    "SCHEMA_VERSION",
    "AuditLog",
    "AuditRecord",
    "Credentials",
    "PostgresSink",
    "QuarantineEntry",
    "QuarantineStore",
    "ReplayedBatch",
    "Roles",
    "connect",
    "credentials",
    "migrate",
    "vault_lookup",
]

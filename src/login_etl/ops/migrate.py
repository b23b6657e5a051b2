"""`login-etl migrate`: create or upgrade the schema, and optionally the group roles."""

from __future__ import annotations

from dataclasses import dataclass

from login_etl.adapters.postgres import SCHEMA_VERSION, Roles
from login_etl.adapters.postgres.roles import DEFAULT_ANALYST_ROLE, DEFAULT_SERVICE_ROLE
from login_etl.config import Settings
from login_etl.runtime.wiring import database, migrate_database


@dataclass(frozen=True, slots=True)
class Migrated:
    """The migrations applied (none: the schema was current), the schema's version now, and the
    roles created and granted, if asked for."""

    applied: tuple[int, ...]
    version: int
    roles: Roles | None


def migrate_schema(settings: Settings, roles: Roles | None = None) -> Migrated:
    """Apply pending migrations (and, with `roles`, create and grant the group roles) in one
    transaction; run it as the schema owner."""
    applied = migrate_database(database(settings), roles)
    return Migrated(tuple(applied), SCHEMA_VERSION, roles)


__all__ = ["DEFAULT_ANALYST_ROLE", "DEFAULT_SERVICE_ROLE", "Migrated", "Roles", "migrate_schema"]

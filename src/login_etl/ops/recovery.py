"""Recovery of plaintext by key holders, and its audit trail: `reveal`, `quarantine show`,
`quarantine list` and `audit`.

Every recovery writes one audit record (who asked, why, how many values; never a value) and
commits it before it returns the plaintext, so a caller that shows only what it gets back never
shows anything unrecorded. A recovery that fails (a value that does not decrypt) returns no
plaintext and leaves no record.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from login_etl.adapters.postgres import (
    AuditLog,
    AuditRecord,
    QuarantineEntry,
    QuarantineStore,
    connect,
    credentials,
    vault_lookup,
)
from login_etl.adapters.postgres.audit import Action, AuditField, Recovery
from login_etl.config import Settings
from login_etl.core.masking import Field, TinkMasker, TinkSealer, VaultLookup
from login_etl.errors import NotInQuarantine, RevealError
from login_etl.keys import load_keys

# Where getpass.getuser() looks, in its order. Anyone can set them: they are recorded as a claim.
_CLAIMS = ("LOGNAME", "USER", "LNAME", "USERNAME")


@dataclass(frozen=True, slots=True)
class OsUser:
    """Who runs this process: the uid's name, and what the environment claims if it differs."""

    name: str
    claimed: str | None


def os_user(environ: Mapping[str, str] = os.environ) -> OsUser:
    """The effective uid's name from the password database (its number where it has none, as a
    container's arbitrary uid), not LOGNAME/USER, which the caller sets; those are kept as
    `claimed` when they name someone else."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    claim = next((environ[v] for v in _CLAIMS if environ.get(v)), None)
    return OsUser(name=name, claimed=claim if claim != name else None)


@dataclass(frozen=True, slots=True)
class Request:
    """Who asks for plaintext and why; both are kept in the audit record."""

    reason: str
    requester: str | None = None  # None: the name of the uid running the command


class AuditTrail(Protocol):
    """Where recoveries are recorded (`AuditLog`); `record` commits before it returns."""

    def record(self, recovery: Recovery) -> int: ...


class RejectedLookup(Protocol):
    """Finds one rejected message (`QuarantineStore`)."""

    def get(self, message_id: str) -> QuarantineEntry | None: ...


def record_recovery(
    trail: AuditTrail,
    request: Request,
    *,
    action: Action,
    field: AuditField,
    value_count: int,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Write and commit the audit record; call it once the plaintext is in hand and about to be
    returned. If it raises, return nothing."""
    user = os_user(environ)
    trail.record(
        Recovery(
            action=action,
            field=field,
            value_count=value_count,
            reason=request.reason.strip(),
            requester=(request.requester or user.name).strip(),
            os_user=user.name,
            os_user_claimed=user.claimed,
        )
    )


@dataclass(frozen=True, slots=True)
class Undecryptable:
    """A value that does not decrypt: its 1-based position in the input, and why (never the
    value)."""

    position: int
    error: str


@dataclass(frozen=True, slots=True)
class Revealed:
    """The outcome of a reveal. `plaintexts` is filled only once the audit record is committed;
    with failures, or a refused line break, it is empty and nothing was recorded."""

    plaintexts: tuple[str, ...] = ()
    failures: tuple[Undecryptable, ...] = ()
    # Refused: a plaintext holds a line break, and the caller prints one value per line.
    line_break: bool = False


def reveal_values(
    masker: TinkMasker,
    vault: VaultLookup,
    trail: AuditTrail,
    *,
    field: Field,
    tokens: Iterable[str],
    request: Request,
    one_per_line: bool,
) -> Revealed:
    """The plaintexts of `tokens`, in order, all or none (see `Revealed`)."""
    plaintexts: list[str] = []
    failures: list[Undecryptable] = []
    for position, token in enumerate(tokens, start=1):
        try:
            plaintexts.append(masker.reveal(field, token, vault))
        except RevealError as error:
            failures.append(Undecryptable(position, str(error)))
    if failures:
        return Revealed(failures=tuple(failures))
    if one_per_line and any("\n" in p or "\r" in p for p in plaintexts):
        return Revealed(line_break=True)
    if plaintexts:  # nothing to show, nothing to record
        record_recovery(trail, request, action="reveal", field=field, value_count=len(plaintexts))
    return Revealed(plaintexts=tuple(plaintexts))


def reveal(
    settings: Settings,
    field: Field,
    tokens: Iterable[str],
    request: Request,
    *,
    one_per_line: bool,
) -> Revealed:
    """`login-etl reveal`: over-long values keep their ciphertext in the database's vault."""
    masker = load_keys(settings).masker
    with connect(credentials(settings)) as conn:
        return reveal_values(
            masker,
            vault_lookup(conn),
            AuditLog(conn),
            field=field,
            tokens=tokens,
            request=request,
            one_per_line=one_per_line,
        )


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    """One rejected message with its body decrypted."""

    message_id: str
    rejected_at: dt.datetime
    reason: str
    body: str


def open_rejected(
    quarantine: RejectedLookup,
    sealer: TinkSealer,
    trail: AuditTrail,
    message_id: str,
    request: Request,
) -> RejectedMessage:
    """Decrypt one rejected message, recorded in the audit trail first; NotInQuarantine if no
    message has that id."""
    entry = quarantine.get(message_id)
    if entry is None:
        raise NotInQuarantine(f"no rejected message with id {message_id}")
    body = sealer.open(entry.message_id, entry.body)
    record_recovery(trail, request, action="quarantine show", field="body", value_count=1)
    return RejectedMessage(entry.message_id, entry.rejected_at, entry.reason, body)


def show_rejected(settings: Settings, message_id: str, request: Request) -> RejectedMessage:
    """`login-etl quarantine show`."""
    sealer = load_keys(settings).sealer
    with connect(credentials(settings)) as conn:
        return open_rejected(QuarantineStore(conn), sealer, AuditLog(conn), message_id, request)


@dataclass(frozen=True, slots=True)
class RejectedList:
    """The newest rejected messages (bodies still encrypted) and how many there are in all."""

    entries: tuple[QuarantineEntry, ...]
    total: int


def list_rejected(settings: Settings, limit: int) -> RejectedList:
    """`login-etl quarantine list`: ids, times and reasons; nothing is decrypted."""
    with connect(credentials(settings)) as conn:
        store = QuarantineStore(conn)
        return RejectedList(tuple(store.list(limit)), store.count())


def audit_records(settings: Settings, limit: int, since: dt.datetime | None) -> list[AuditRecord]:
    """`login-etl audit`: records at or after `since` (all if None), newest first."""
    with connect(credentials(settings)) as conn:
        return AuditLog(conn).list(limit, since)


__all__ = [
    "AuditRecord",
    "OsUser",
    "RejectedList",
    "RejectedMessage",
    "Request",
    "Revealed",
    "Undecryptable",
    "audit_records",
    "list_rejected",
    "open_rejected",
    "os_user",
    "record_recovery",
    "reveal",
    "reveal_values",
    "show_rejected",
]

"""Rotation and rekey: after `keys rotate` and `rekey`, every stored value decrypts under the
new primary alone, duplicates group again, and old keys can be disabled, with `run` working
throughout."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from login_etl.adapters.postgres import vault_lookup
from login_etl.adapters.postgres.keyuse import key_usage
from login_etl.config import Settings
from login_etl.keys import KeyRing, load_key_file, read_key_file, write_key_file
from login_etl.keys.keyfile import TEMPLATES
from login_etl.keys.rotation import DISABLED, describe, rotated, with_status
from login_etl.ops.rekey import RekeyStats, rekey, stale
from login_etl.runtime.wiring import open_worker
from tests.support import count, start_worker

LONG_DEVICE = "é" * 200  # 400 UTF-8 bytes: too long for an inline token, so a vault token
IPS = ["10.0.0.1", "10.0.0.2", "2001:db8::1", "192.168.7.7"]

# These tests rotate or rewrap their key file: each has one of its own.
pytestmark = pytest.mark.own_key_file


def bodies(n: int, tag: str) -> list[str]:
    """Logins from a few ips and devices, so that equal values recur (duplicates to group)."""
    out = [
        json.dumps(
            {
                "user_id": f"{tag}-{i}",
                "device_type": "ios",
                "ip": IPS[i % len(IPS)],
                "device_id": LONG_DEVICE if i % 7 == 0 else f"dev-{i % 5}",
                "locale": "US",
                "app_version": "1.2.3",
            }
        )
        for i in range(n)
    ]
    return [*out, json.dumps({"user_id": f"{tag}-bad", "ip": "10.0.0.1"})]  # one rejection


def load(
    make_settings: Callable[..., Settings], send: Callable[[list[str]], int], n: int, tag: str
) -> None:
    send(bodies(n, tag))
    with open_worker(make_settings(pollers=2)) as worker:
        worker.run(until_empty=True)


def rotate(path: Path) -> tuple[int, int]:
    """Rotate both keysets in the file; returns the old primaries."""
    key_file = read_key_file(path)
    ring = key_file.ring()
    write_key_file(
        path,
        key_file.with_keysets(**{n: rotated(h, TEMPLATES[n]) for n, h in key_file.keysets.items()}),
        overwrite=True,
    )
    return ring.masking_primary, ring.quarantine_primary


def only_primaries(path: Path) -> KeyRing:
    """The rotated key file with every non-primary key disabled."""
    key_file = read_key_file(path)
    handles = {
        name: with_status(h, [k.key_id for k in describe(h) if not k.primary], DISABLED)
        for name, h in key_file.keysets.items()
    }
    return key_file.with_keysets(**handles).ring()


def stored(db: psycopg.Connection[tuple[Any, ...]]) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.execute("SELECT masked_ip, masked_device_id FROM user_logins")]


def assert_all_under_primary(db: psycopg.Connection[tuple[Any, ...]], path: Path) -> None:
    keys = only_primaries(path)
    assert stale(key_usage(db), keys) == 0
    vault = vault_lookup(db)
    rows = stored(db)
    ips = [keys.masker.reveal("ip", ip) for ip, _ in rows]
    devices = [keys.masker.reveal("device_id", d, vault) for _, d in rows]
    # Duplicates group: one token per distinct plaintext, with the same counts.
    assert Counter(Counter(ip for ip, _ in rows).values()) == Counter(Counter(ips).values())
    assert len({ip for ip, _ in rows}) == len(set(ips)) == len(IPS)
    assert len({d for _, d in rows}) == len(set(devices))
    assert LONG_DEVICE in devices
    for entry in db.execute("SELECT message_id, body FROM login_etl.rejected_messages"):
        assert "user_id" in keys.sealer.open(entry[0], bytes(entry[1]))


def test_rotate_then_rekey_puts_everything_under_the_new_primary_and_duplicates_group(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    db: psycopg.Connection[tuple[Any, ...]],
    key_file: Path,
) -> None:
    load(make_settings, send, 60, "before")
    old_masking, _ = rotate(key_file)
    load(make_settings, send, 40, "after")  # the workers now write under the new key

    rows = stored(db)
    assert len(rows) == 100
    # Between rotation and rekey, one ip has two tokens: grouping is broken.
    assert len({ip for ip, _ in rows}) == 2 * len(IPS)
    keys = load_key_file(key_file)
    before = stale(key_usage(db), keys)
    # 60 rows × 2 values, the vault ciphertext of the long device id, 1 rejected body.
    assert before == 60 * 2 + 1 + 1

    stats = rekey(db, keys, batch_pages=1)
    assert (stats.rows, stats.values, stats.bodies, stats.remaining) == (60, 120, 1, 0)
    assert stats.vault_retired == 1  # the old ciphertext of the long device id
    assert count(db, "user_logins") == 100
    assert_all_under_primary(db, key_file)
    assert old_masking not in {u.key_id for u in key_usage(db)}

    again = rekey(db, keys)  # idempotent: nothing left to do
    assert (again.rows, again.values, again.bodies, again.remaining) == (0, 0, 0, 0)


def test_rekey_resumes_after_an_interruption(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    db: psycopg.Connection[tuple[Any, ...]],
    key_file: Path,
) -> None:
    load(make_settings, send, 300, "x")
    rotate(key_file)
    keys = load_key_file(key_file)

    def interrupt(stats: RekeyStats) -> None:
        if stats.rows:
            raise KeyboardInterrupt

    total = stale(key_usage(db), keys)
    with pytest.raises(KeyboardInterrupt):
        rekey(db, keys, batch_pages=1, progress=interrupt)
    left = stale(key_usage(db), keys)
    assert 0 < left < total  # the batches committed before the interruption stay done

    rest = rekey(db, keys, batch_pages=1)
    assert rest.values + rest.bodies + rest.vault_retired == left
    assert rest.remaining == 0
    assert_all_under_primary(db, key_file)


def test_rekey_runs_while_a_worker_loads(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    db: psycopg.Connection[tuple[Any, ...]],
    key_file: Path,
) -> None:
    load(make_settings, send, 300, "old")
    rotate(key_file)
    send(bodies(200, "new"))
    worker = start_worker(cli.env, "--until-empty")  # type: ignore[attr-defined]
    result = cli("rekey", "--batch-pages", "1")
    assert worker.wait(timeout=120) == 0
    assert result.returncode == 0, result.stderr
    assert "Every stored value is under the primary keys" in result.stdout
    assert count(db, "user_logins") == 500
    assert_all_under_primary(db, key_file)


def test_old_keys_can_be_disabled_only_once_nothing_needs_them(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    db: psycopg.Connection[tuple[Any, ...]],
    key_file: Path,
) -> None:
    load(make_settings, send, 20, "a")
    assert cli("keys", "rotate").returncode == 0
    old = [
        str(k.key_id)
        for h in read_key_file(key_file).keysets.values()
        for k in describe(h)
        if not k.primary
    ]
    check = cli("keys", "check")
    assert check.returncode == 1
    assert "needs an old key" in check.stdout

    refused = cli("keys", "disable", *old)
    assert refused.returncode == 1
    assert "run rekey first" in refused.stderr
    assert all(
        k.status == "ENABLED" for h in read_key_file(key_file).keysets.values() for k in describe(h)
    )

    assert cli("rekey").returncode == 0
    assert cli("keys", "check").returncode == 0
    disabled = cli("keys", "disable", *old)
    assert disabled.returncode == 0, disabled.stderr
    statuses = {
        str(k.key_id): k.status
        for h in read_key_file(key_file).keysets.values()
        for k in describe(h)
    }
    assert {statuses[k] for k in old} == {"DISABLED"}
    # Everything stored still reveals with the file as it now is (old keys disabled).
    keys = load_key_file(key_file)
    assert {keys.masker.reveal("ip", ip) for ip, _ in stored(db)} == set(IPS)
    assert cli("keys", "enable", *old).returncode == 0


def test_rows_from_a_worker_still_on_the_old_key_file_are_caught_and_rekeyed(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    db: psycopg.Connection[tuple[Any, ...]],
    key_file: Path,
    tmp_path: Path,
) -> None:
    stale_copy = tmp_path / "old-keys.json"
    stale_copy.write_bytes(key_file.read_bytes())
    load(make_settings, send, 30, "a")
    rotate(key_file)
    keys = load_key_file(key_file)
    assert rekey(db, keys).remaining == 0

    # A worker nobody restarted writes with the old key, reusing the long value's old vault
    # token, whose entry rekey retired (re-encrypted), not deleted.
    send(bodies(15, "late"))
    with open_worker(make_settings(keyset_file=stale_copy)) as worker:
        worker.run(until_empty=True)
    late = stale(key_usage(db), keys)
    assert late == 15 * 2 + 1
    vault = vault_lookup(db)
    assert LONG_DEVICE in {keys.masker.reveal("device_id", d, vault) for _, d in stored(db)}

    again = rekey(db, keys)
    assert (again.values, again.remaining) == (30, 0)
    assert_all_under_primary(db, key_file)

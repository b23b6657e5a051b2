"""At DEBUG, no key material reaches the logs: not from the CLI, the worker processes or the
Lambda handler.

The key file is KMS-wrapped (moto's KMS over HTTP), so unwrapping it is one KMS Decrypt per
keyset, and botocore at DEBUG would log each response body: `{"Plaintext": "<data key>"}`.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from login_etl.demo.data import generate_bodies
from login_etl.demo.services import MotoSqs
from login_etl.keys import create_key_file, read_key_file
from tests.support import Cli

# Lambda's runtime, in short: it installs a root handler of its own and sets the root's level
# (AWS_LAMBDA_LOG_LEVEL, here DEBUG) before it imports the handler, then calls the handler.
LAMBDA_RUNTIME = """
import json, logging, sys
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.DEBUG)
from login_etl.lambda_handler import handler as login_etl_handler
print(json.dumps(login_etl_handler(json.load(sys.stdin), None)))
"""


@pytest.fixture
def kms_env(moto: MotoSqs, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """boto3's own variable for the KMS endpoint, here and in the child processes."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto.endpoint)
    return {"AWS_ENDPOINT_URL_KMS": moto.endpoint}


@pytest.fixture
def wrapped(tmp_path: Path, kms: Any, kms_env: dict[str, str]) -> Path:
    path = tmp_path / "wrapped-keys.json"
    key_uri = "aws-kms://" + str(kms.create_key()["KeyMetadata"]["Arn"])
    create_key_file(path, kms_key_uri=key_uri)
    return path


def key_material(path: Path, kms: Any) -> list[str]:
    """Every form in which the file's key material could show in a log.

    Each keyset is Tink's envelope ciphertext: a 4-byte length, the data key encrypted by KMS,
    then the keyset encrypted by the data key. The data key is what KMS Decrypt returns as
    `Plaintext` (botocore would log its base64); the Tink keys are what it unwraps.
    """
    from tink import json_proto_keyset_format, secret_key_access

    forms: list[bytes] = []
    for keyset in json.loads(path.read_text())["keysets"].values():
        envelope = base64.b64decode(keyset["encryptedKeyset"])
        (length,) = struct.unpack(">I", envelope[:4])
        data_key = kms.decrypt(CiphertextBlob=envelope[4 : 4 + length])["Plaintext"]
        forms += [data_key, data_key[-32:]]  # the serialized AesGcmKey, and its 32-byte key
    for handle in read_key_file(path).keysets.values():
        cleartext = json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
        for key in json.loads(cleartext)["key"]:
            value = base64.b64decode(key["keyData"]["value"])
            forms += [value, value[-32:]]
    assert len(forms) == 8  # two keysets: each a data key and one Tink key
    return [text for raw in forms for text in (base64.b64encode(raw).decode(), raw.hex())]


def assert_no_key_material(output: str, material: list[str]) -> None:
    """(Counts only: pytest would print the text that holds them.)"""
    leaked = sum(form in output for form in material)
    responses = output.count("Plaintext")
    assert (leaked, responses) == (0, 0), (
        f"{leaked} forms of key material and {responses} KMS response bodies reached the logs"
    )


def own_debug_lines(stderr: str) -> list[dict[str, Any]]:
    """login-etl's own DEBUG records among JSON log lines: proof that DEBUG was on."""
    records = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("level") == "DEBUG":
            records.append(record)
    assert all(str(r.get("logger", "")).startswith("login_etl") for r in records)
    return records


def test_run_at_debug_logs_no_key_material(
    wrapped: Path, kms: Any, kms_env: dict[str, str], cli: Cli, send: Callable[[list[str]], int]
) -> None:
    send(generate_bodies(20))
    done = cli(
        "run",
        "--until-empty",
        LOGIN_ETL_KEYSET_FILE=str(wrapped),
        LOGIN_ETL_LOG_LEVEL="DEBUG",
        LOGIN_ETL_LOG_FORMAT="json",
        **kms_env,
    )
    assert done.returncode == 0, done.stderr
    assert " 19 loaded, 1 rejected, " in done.stdout
    assert_no_key_material(done.stdout + done.stderr, key_material(wrapped, kms))
    assert own_debug_lines(done.stderr)


def test_worker_processes_at_debug_log_no_key_material(
    wrapped: Path, kms: Any, kms_env: dict[str, str], cli: Cli, send: Callable[[list[str]], int]
) -> None:
    send(generate_bodies(20))
    done = cli(
        "run",
        "--until-empty",
        "--processes",
        "2",
        "--pollers",
        "1",
        LOGIN_ETL_KEYSET_FILE=str(wrapped),
        LOGIN_ETL_LOG_LEVEL="DEBUG",
        LOGIN_ETL_LOG_FORMAT="json",
        **kms_env,
    )
    assert done.returncode == 0, done.stderr
    assert " 19 loaded, 1 rejected, " in done.stdout
    assert_no_key_material(done.stdout + done.stderr, key_material(wrapped, kms))
    started = {r["message"] for r in own_debug_lines(done.stderr) if "started" in r["message"]}
    assert started == {"worker 0 started", "worker 1 started"}


def test_lambda_at_debug_logs_no_key_material(
    wrapped: Path, kms: Any, kms_env: dict[str, str], database_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGIN_ETL_", "AWS_"))} | {
        "LOGIN_ETL_DATABASE_URL": database_url,
        "LOGIN_ETL_KEYSET_FILE": str(wrapped),
        "LOGIN_ETL_LOG_LEVEL": "DEBUG",
        **kms_env,
    }
    records = [
        {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": uuid.uuid4().hex,
            "body": text,
            "attributes": {"SentTimestamp": "1700000000000"},
        }
        for text in generate_bodies(5)
    ]
    done = subprocess.run(
        [sys.executable, "-c", LAMBDA_RUNTIME],
        input=json.dumps({"Records": records}),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"batchItemFailures": []}
    assert_no_key_material(done.stdout + done.stderr, key_material(wrapped, kms))
    assert "[DEBUG] login_etl." in done.stderr  # DEBUG was on, through the runtime's handler
    assert "4 loaded, 1 rejected" in done.stderr

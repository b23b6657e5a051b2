"""The key store: one file holding every key the service needs, as Tink keysets, optionally
wrapped by an AWS KMS key."""

from login_etl.keys.keyfile import (
    KeyFile,
    KeyRing,
    create_key_file,
    load_key_file,
    read_key_file,
    write_key_file,
)
from login_etl.keys.loading import load_keys

__all__ = [
    "KeyFile",
    "KeyRing",
    "create_key_file",
    "load_key_file",
    "load_keys",
    "read_key_file",
    "write_key_file",
]

"""The one way commands and workers get their keys: from the settings."""

from __future__ import annotations

from login_etl.config import KEYSET_SECRET, Settings
from login_etl.config.secretref import parse_secret_ref
from login_etl.keys.keyfile import KeyRing
from login_etl.keys.store import FileKeyStore, KeyStore, SecretKeyStore


def key_store(settings: Settings) -> KeyStore:
    """Where the settings keep the key file: LOGIN_ETL_KEYSET_SECRET's secret if set, else
    LOGIN_ETL_KEYSET_FILE (ConfigError saying how to create one if neither is set)."""
    if settings.keyset_secret is not None:
        return SecretKeyStore(parse_secret_ref(settings.keyset_secret, KEYSET_SECRET))
    return FileKeyStore(settings.require_keyset_file())


def load_keys(settings: Settings) -> KeyRing:
    """The key ring of the settings' key file (or key secret), unwrapped through KMS if it is
    wrapped.

    With LOGIN_ETL_KMS_KEY_URI set, only a key file wrapped by that key is accepted.
    """
    return key_store(settings).read(required_kms_key_uri=settings.kms_key_uri).ring()

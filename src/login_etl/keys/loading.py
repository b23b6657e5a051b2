"""The one way commands and workers get their keys: from the settings."""

from __future__ import annotations

from login_etl.config import Settings
from login_etl.keys.keyfile import KeyRing, read_key_file


def load_keys(settings: Settings) -> KeyRing:
    """The key ring named by LOGIN_ETL_KEYSET_FILE, unwrapped through KMS if it is wrapped.

    With LOGIN_ETL_KMS_KEY_URI set, only a file wrapped by that key is accepted.
    """
    path = settings.require_keyset_file()
    return read_key_file(path, required_kms_key_uri=settings.kms_key_uri).ring()

"""The key store: one file holding every key the service needs, as Tink JSON keysets."""

from login_etl.keys.keyfile import KeyRing, create_key_file, load_key_file

__all__ = ["KeyRing", "create_key_file", "load_key_file"]

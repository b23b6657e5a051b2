"""Message body → `LoginEvent`, or `Invalid` with a reason naming each field and rule.

Hand-written rather than a pydantic model: the rules (trim, canonical IP, version encoding, "a
number where a string belongs" is an error, not a coercion) are a dozen lines each, the reasons
stay short and value-free (they are stored and logged in plaintext, so they must never quote the
input), and the transform stays well above 100,000 messages/s on one core.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from login_etl.core.app_version import encode_app_version
from login_etl.core.model import LoginEvent

# The fields the service reads; any other key is ignored.
KNOWN_FIELDS = ("user_id", "device_type", "ip", "device_id", "locale", "app_version")


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a body was rejected: `field: rule` clauses joined by '; '."""

    reason: str


class _DuplicateField(ValueError):
    pass


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a known field given twice: parsers disagree on which copy
    wins, and a body that means different things to different readers is not trustworthy."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen and key in KNOWN_FIELDS:
                raise _DuplicateField(key)
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _text(value: str, field: str, low: int, high: int, counted: str = "") -> str | None:
    """The rule a string breaks, or None. Postgres text cannot hold NUL or unpaired surrogates,
    so those are input errors here rather than load failures later."""
    if not low <= len(value) <= high:
        return f"{field}: must be {low}–{high} characters{counted}, got {len(value)}"
    if "\x00" in value:
        return f"{field}: must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{field}: must be valid Unicode (it has an unpaired surrogate)"
    return None


def _string(obj: dict[str, Any], field: str, errors: list[str], *, optional: bool) -> str | None:
    """The field's string value, or None after recording an error (or when optional and absent)."""
    value = obj.get(field)
    if value is None:
        if not optional:
            errors.append(f"{field}: required" if field not in obj else f"{field}: must not be null")
        return None
    if not isinstance(value, str):
        errors.append(f"{field}: must be a string, got {_json_type(value)}")
        return None
    return value


def validate(body: str) -> LoginEvent | Invalid:
    """Validate and normalise one message body (see the mapping table in the README)."""
    try:
        obj = json.loads(body, object_pairs_hook=_object_pairs, parse_constant=_reject_constant)
    except _DuplicateField as dup:
        return Invalid(f"{dup}: given more than once")
    except json.JSONDecodeError as err:
        return Invalid(f"body: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})")
    except (ValueError, RecursionError) as err:
        return Invalid(f"body: not valid JSON ({err})")
    if not isinstance(obj, dict):
        return Invalid(f"body: must be a JSON object, got {_json_type(obj)}")

    errors: list[str] = []

    user_id = _string(obj, "user_id", errors, optional=False)
    if user_id is not None and (problem := _text(user_id, "user_id", 1, 128)):
        errors.append(problem)

    device_type = _string(obj, "device_type", errors, optional=False)
    if device_type is not None and (problem := _text(device_type, "device_type", 1, 32)):
        errors.append(problem)

    ip = _string(obj, "ip", errors, optional=False)
    if ip is not None:
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            errors.append("ip: must be an IPv4 or IPv6 address")
        else:
            # A zone index ("fe80::1%eth0") names an interface on the sender's machine: it is no
            # part of a client address, and it is free text that could carry anything.
            if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
                errors.append("ip: must be an IPv4 or IPv6 address without a zone index")
            ip = str(address)

    device_id = _string(obj, "device_id", errors, optional=False)
    if device_id is not None:
        device_id = device_id.strip()
        if problem := _text(device_id, "device_id", 1, 256, " after trimming whitespace"):
            errors.append(problem)

    locale = _string(obj, "locale", errors, optional=True)
    if locale is not None and (problem := _text(locale, "locale", 0, 32)):
        errors.append(problem)

    app_version_text = _string(obj, "app_version", errors, optional=True)
    app_version: int | None = None
    if app_version_text is not None:
        try:
            app_version = encode_app_version(app_version_text)
        except ValueError as err:
            errors.append(f"app_version: {err}")

    if errors:
        return Invalid("; ".join(errors))
    # Every required field is a str here: a None would have recorded an error above.
    assert user_id is not None and device_type is not None  # noqa: S101 - narrows types for mypy.
    assert ip is not None and device_id is not None  # noqa: S101
    return LoginEvent(user_id, device_type, ip, device_id, locale, app_version)

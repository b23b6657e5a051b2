"""`MAJOR[.MINOR[.PATCH]]` ⇄ the integer stored in `user_logins.app_version`.

The integer is `MAJOR*1_000_000 + MINOR*1_000 + PATCH`, which sorts like the version and fits a
Postgres `integer` while MAJOR ≤ 2146. SQL's `login_etl.app_version_text(integer)` is the inverse.
"""

from __future__ import annotations

import re

from login_etl.core.reasons import Rule, RuleBroken

MAX_MAJOR = 2146
MAX_MINOR = 999
MAX_PATCH = 999

# re.ASCII: `\d` would otherwise accept other scripts' digits, which int() also parses.
_VERSION = re.compile(r"([0-9]+)(?:\.([0-9]+)(?:\.([0-9]+))?)?", re.ASCII)


def _bounded(part: str, limit: int) -> int | None:
    """The part's value, or None if above `limit`; checks the length first so that a
    million-digit part costs nothing (int() refuses those anyway)."""
    digits = part.lstrip("0") or "0"
    if len(digits) > len(str(limit)):
        return None
    value = int(digits)
    return value if value <= limit else None


def encode_app_version(text: str) -> int:
    """Encode a version string; RuleBroken (a ValueError) names the rule that failed."""
    match = _VERSION.fullmatch(text)
    if match is None:
        raise RuleBroken(Rule.INVALID, "must be MAJOR[.MINOR[.PATCH]] in decimal digits")
    major_s, minor_s, patch_s = match.groups(default="0")
    major = _bounded(major_s, MAX_MAJOR)
    if major is None:
        raise RuleBroken(Rule.OUT_OF_RANGE, f"MAJOR must be at most {MAX_MAJOR}")
    minor = _bounded(minor_s, MAX_MINOR)
    if minor is None:
        raise RuleBroken(Rule.OUT_OF_RANGE, f"MINOR must be at most {MAX_MINOR}")
    patch = _bounded(patch_s, MAX_PATCH)
    if patch is None:
        raise RuleBroken(Rule.OUT_OF_RANGE, f"PATCH must be at most {MAX_PATCH}")
    return major * 1_000_000 + minor * 1_000 + patch


def decode_app_version(value: int) -> str:
    """The canonical `MAJOR.MINOR.PATCH` text of a stored integer."""
    if not 0 <= value <= MAX_MAJOR * 1_000_000 + MAX_MINOR * 1_000 + MAX_PATCH:
        raise ValueError(f"{value} is not an encoded app version")
    return f"{value // 1_000_000}.{value // 1_000 % 1_000}.{value % 1_000}"

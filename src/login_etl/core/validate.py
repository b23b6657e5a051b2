"""Message body → `LoginEvent`, or `Invalid`: the problems found, each a field and a rule.

Hand-written rather than a pydantic model: the rules (trim, canonical IP, version encoding, "a
number where a string belongs" is an error, not a coercion) are a dozen lines each, the reasons
stay short and value-free (they are stored and logged in plaintext, so they must never quote the
input), and the transform stays well above 100,000 messages/s on one core.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from login_etl.core.app_version import encode_app_version
from login_etl.core.model import LoginEvent
from login_etl.core.reasons import Invalid, Problem, Rule, RuleBroken, Subject

__all__ = ["MAX_DEPTH", "Invalid", "canonical_ip", "validate"]


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


class _RepeatedKeys(dict[str, Any]):
    """A JSON object in which some keys appear more than once (`repeated`); the last copy wins
    in the dict, as in json's default."""

    __slots__ = ("repeated",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.repeated: set[str] = set()
        for key, _ in pairs:
            (self.repeated if key in seen else seen).add(key)


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, noting the keys given twice. Only the top-level object's repeats of
    known fields reject the message (see `_parse`): nested objects are ignored, whatever they
    hold, and the hook does not know how deep it is."""
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else _RepeatedKeys(pairs)


class _Constant(ValueError):
    """NaN, Infinity or -Infinity: JavaScript, not JSON (RFC 8259 has no such numbers)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _reject_constant(name: str) -> Any:
    raise _Constant(name)


# Python refuses to convert integers of more than 4,300 digits (a denial-of-service guard). Such a
# number in an ignored key must not sink the message, and in a known key it is a wrong type
# anyway, so it is kept as an (infinite) float: a number, never converted.
_INT_DIGITS_LIMIT = 4_000


def _parse_int(text: str) -> int | float:
    return int(text) if len(text) < _INT_DIGITS_LIMIT else float("inf")


# One decoder for every message: json.loads with arguments would build a new one per call.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_pairs, parse_constant=_reject_constant, parse_int=_parse_int
)

# Nesting deeper than this is rejected before parsing. The parser recurses once per level against
# Python's recursion limit, which the caller's stack shares: left to it, a body nested ~900 deep
# could load in one process and be rejected in another. No login event nests beyond a few levels.
MAX_DEPTH = 256
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _too_deep(body: str) -> bool:
    """Whether the JSON text nests more than MAX_DEPTH arrays and objects (brackets inside
    strings do not count). Exact for valid JSON; for other text, either answer rejects it.

    No Python loop over the text: a 256 KiB body of brackets (the most SQS takes) costs about
    what parsing it does."""
    if body.count("[") + body.count("{") <= MAX_DEPTH:  # nearly every message: no scan
        return False
    outside_strings = _STRING.sub("", body).encode("utf-8", "surrogatepass")
    steps = map(_STEP.__getitem__, outside_strings.translate(None, _NOT_BRACKETS))
    return max(accumulate(steps), default=0) > MAX_DEPTH


# The json module's error messages, as fixed phrases. The C scanner's never quote the input; the
# pure-Python fallback's quote one character ("Invalid \\escape: 'x'"), so the stored reason
# carries the phrase only, with the position: it helps the sender, and holds no input.
_JSON_ERRORS = (
    "Expecting value",
    "Expecting property name enclosed in double quotes",
    "Expecting ':' delimiter",
    "Expecting ',' delimiter",
    "Unterminated string",
    "Invalid control character",
    "Invalid \\uXXXX escape",
    "Invalid \\escape",
    "Extra data",
    "Illegal trailing comma before end of object",
    "Illegal trailing comma before end of array",
)
_JSON_WHITESPACE = " \t\r\n"


def _json_error(body: str, err: json.JSONDecodeError) -> str:
    """A JSONDecodeError as `not valid JSON (…)`, without any character of the input."""
    if not body.strip(_JSON_WHITESPACE):
        return "not valid JSON (empty)"
    if body.startswith("\ufeff"):
        # json.loads says so too; JSONDecoder.decode only sees "Expecting value" at column 1.
        return "not valid JSON (it starts with a byte order mark, U+FEFF)"
    phrase = next((p for p in _JSON_ERRORS if err.msg.startswith(p)), "malformed")
    return f"not valid JSON ({phrase} at line {err.lineno} column {err.colno})"


_TOO_DEEP = Invalid.of("body", Rule.TOO_DEEP, f"nested more than {MAX_DEPTH} levels deep")


def _text(low: int, high: int, counted: str = "") -> Callable[[str], str]:
    """A rule for a string of `low`–`high` characters. Postgres text cannot hold NUL or
    unpaired surrogates, so those are input errors here rather than load failures later."""

    def check(value: str) -> str:
        if not low <= len(value) <= high:
            raise RuleBroken(
                Rule.LENGTH, f"must be {low}–{high} characters{counted}, got {len(value)}"
            )
        if "\x00" in value:
            raise RuleBroken(Rule.NUL, "must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RuleBroken(
                Rule.SURROGATE, "must be valid Unicode (it has an unpaired surrogate)"
            ) from None
        return value

    return check


def canonical_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """`str(address)` as Python 3.13 writes it (RFC 5952), on every Python.

    Python 3.11 and 3.12 write an IPv4-mapped address in hex ("::ffff:102:304"), 3.13 in mixed
    notation ("::ffff:1.2.3.4"). The token depends on this text, so it must not change when the
    interpreter does.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


# A dotted quad without leading zeros is already its own canonical text; matching it is ten
# times cheaper than ipaddress, and it is nearly every address the service sees.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


def _ip(value: str) -> str:
    value = value.strip()
    if _CANONICAL_IPV4.fullmatch(value):
        return value
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        # `from None`: ipaddress's message quotes the value.
        raise RuleBroken(Rule.INVALID, "must be an IPv4 or IPv6 address") from None
    # A zone index ("fe80::1%eth0") names an interface on the sender's machine: it is no part
    # of a client address, and it is free text that could carry anything.
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise RuleBroken(Rule.ZONE_INDEX, "must be an IPv4 or IPv6 address without a zone index")
    return canonical_ip(address)


_device_id_text = _text(1, 256, " after trimming whitespace")


def _device_id(value: str) -> str:
    return _device_id_text(value.strip())


# field → (optional, rule); any other key is ignored. A rule returns the stored value or raises
# RuleBroken naming the rule broken, worded without the value.
_RULES: dict[Subject, tuple[bool, Callable[[str], Any]]] = {
    "user_id": (False, _text(1, 128)),
    "device_type": (False, _text(1, 32)),
    "ip": (False, _ip),
    "device_id": (False, _device_id),
    "locale": (True, _text(0, 32)),
    "app_version": (True, encode_app_version),
}


def _decode(body: str) -> Any:
    """The JSON value of the body, or Invalid."""
    try:
        return _DECODER.decode(body)
    except json.JSONDecodeError as err:
        return Invalid.of("body", Rule.NOT_JSON, _json_error(body, err))
    except _Constant as err:
        return Invalid.of("body", Rule.NOT_JSON, f"not valid JSON ({err.name} is not valid JSON)")
    except RecursionError:  # a backstop: MAX_DEPTH keeps the parser far from the limit
        return _TOO_DEEP
    except ValueError:  # nothing else is known to raise it; its text might quote the input
        return Invalid.of("body", Rule.NOT_JSON, "not valid JSON")


def _parse(body: str) -> dict[str, Any] | Invalid:
    obj = _TOO_DEEP if _too_deep(body) else _decode(body)
    if isinstance(obj, Invalid):
        return obj
    if not isinstance(obj, dict):
        return Invalid.of("body", Rule.NOT_OBJECT, f"must be a JSON object, got {_json_type(obj)}")
    if isinstance(obj, _RepeatedKeys):
        # A known field given twice: parsers disagree on which copy wins, and a body that means
        # different things to different readers is not trustworthy. Unknown keys are ignored,
        # repeated or not.
        repeated = [
            Problem(field, Rule.DUPLICATE, "given more than once")
            for field in _RULES
            if field in obj.repeated
        ]
        if repeated:
            return Invalid(tuple(repeated))
    return obj


def validate(body: str) -> LoginEvent | Invalid:
    """Validate and normalise one message body (see the mapping table in the README).

    Every broken rule is reported, in field order, not just the first.
    """
    obj = _parse(body)
    if isinstance(obj, Invalid):
        return obj
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for field, (optional, rule) in _RULES.items():
        value = obj.get(field)
        if value is None:
            if not optional:
                problems.append(
                    Problem(field, Rule.NULL, "must not be null")
                    if field in obj
                    else Problem(field, Rule.REQUIRED, "required")
                )
            values[field] = None
        elif not isinstance(value, str):
            problems.append(
                Problem(field, Rule.WRONG_TYPE, f"must be a string, got {_json_type(value)}")
            )
        else:
            try:
                values[field] = rule(value)
            except RuleBroken as err:
                problems.append(Problem(field, err.rule, err.text))
    if problems:
        return Invalid(tuple(problems))
    return LoginEvent(**values)

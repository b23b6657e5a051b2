"""Every row of the mapping table, and every class of bad input, with its recorded reason."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.core.model import LoginEvent
from login_etl.core.reasons import KINDS, Kind
from login_etl.core.validate import (
    MAX_DEPTH,
    Invalid,
    _json_error,
    _too_deep,
    canonical_ip,
    validate,
)
from tests.support import ABSENT, body, event


def accepted(text: str) -> LoginEvent:
    result = validate(text)
    assert isinstance(result, LoginEvent), result
    return result


def rejected(text: str) -> str:
    result = validate(text)
    assert isinstance(result, Invalid), result
    return result.reason


def test_the_exercise_example_is_accepted_as_given() -> None:
    assert accepted(body()) == LoginEvent(
        user_id="424cdd21-063a-43a7-b91b-7ca1a833afae",
        device_type="android",
        ip="199.172.111.135",
        device_id="593-47-5928",
        locale="RU",
        app_version=2_003_000,
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        # required strings: absent, null, wrong type, empty, too long
        ({"user_id": ABSENT}, "user_id: required"),
        ({"user_id": None}, "user_id: must not be null"),
        ({"user_id": 42}, "user_id: must be a string, got number"),
        ({"user_id": True}, "user_id: must be a string, got boolean"),
        ({"user_id": ["a"]}, "user_id: must be a string, got array"),
        ({"user_id": {"a": 1}}, "user_id: must be a string, got object"),
        ({"user_id": ""}, "user_id: must be 1–128 characters, got 0"),
        ({"user_id": "u" * 129}, "user_id: must be 1–128 characters, got 129"),
        ({"user_id": "a\x00b"}, "user_id: must not contain NUL characters"),
        ({"user_id": "a\ud800b"}, "user_id: must be valid Unicode (it has an unpaired surrogate)"),
        ({"device_type": ABSENT}, "device_type: required"),
        ({"device_type": ""}, "device_type: must be 1–32 characters, got 0"),
        ({"device_type": "d" * 33}, "device_type: must be 1–32 characters, got 33"),
        ({"device_type": 7}, "device_type: must be a string, got number"),
        # ip
        ({"ip": ABSENT}, "ip: required"),
        ({"ip": None}, "ip: must not be null"),
        ({"ip": 3232235777}, "ip: must be a string, got number"),
        ({"ip": "999.1.1.1"}, "ip: must be an IPv4 or IPv6 address"),
        ({"ip": "localhost"}, "ip: must be an IPv4 or IPv6 address"),
        ({"ip": ""}, "ip: must be an IPv4 or IPv6 address"),
        ({"ip": "01.2.3.4"}, "ip: must be an IPv4 or IPv6 address"),
        ({"ip": "fe80::1%eth0"}, "ip: must be an IPv4 or IPv6 address without a zone index"),
        # device_id
        ({"device_id": ABSENT}, "device_id: required"),
        (
            {"device_id": "   "},
            "device_id: must be 1–256 characters after trimming whitespace, got 0",
        ),
        (
            {"device_id": "d" * 257},
            "device_id: must be 1–256 characters after trimming whitespace, got 257",
        ),
        ({"device_id": 5935}, "device_id: must be a string, got number"),
        ({"device_id": "a\x00"}, "device_id: must not contain NUL characters"),
        # locale: optional string of 0–32
        ({"locale": "l" * 33}, "locale: must be 0–32 characters, got 33"),
        ({"locale": 1}, "locale: must be a string, got number"),
        ({"locale": False}, "locale: must be a string, got boolean"),
        # app_version
        ({"app_version": 2.3}, "app_version: must be a string, got number"),
        ({"app_version": ""}, "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits"),
        ({"app_version": "v2.3"}, "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits"),
        (
            {"app_version": "2.3.0.1"},
            "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits",
        ),
        ({"app_version": "2..3"}, "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits"),
        ({"app_version": " 2.3"}, "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits"),
        ({"app_version": "2.3\n"}, "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits"),
        ({"app_version": "٢.٣"}, "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits"),
        ({"app_version": "-1.0"}, "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits"),
        ({"app_version": "2147.0.0"}, "app_version: MAJOR must be at most 2146"),
        ({"app_version": "1" * 5000}, "app_version: MAJOR must be at most 2146"),
        ({"app_version": "1.1000"}, "app_version: MINOR must be at most 999"),
        ({"app_version": "1.0.1000"}, "app_version: PATCH must be at most 999"),
    ],
)
def test_each_bad_field_is_rejected_with_a_reason_naming_field_and_rule(
    fields: dict, reason: str
) -> None:
    assert rejected(body(**fields)) == reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "body: not valid JSON (empty)"),
        (" \r\n\t", "body: not valid JSON (empty)"),
        ("not json", "body: not valid JSON (Expecting value at line 1 column 1)"),
        ('{"user_id": ', "body: not valid JSON (Expecting value at line 1 column 13)"),
        ('{"a": "b', "body: not valid JSON (Unterminated string at line 1 column 7)"),
        ('{"a": "\tb"}', "body: not valid JSON (Invalid control character at line 1 column 8)"),
        ('{"a": "\\q"}', "body: not valid JSON (Invalid \\escape at line 1 column 8)"),
        ("\ufeff" + body(), "body: not valid JSON (it starts with a byte order mark, U+FEFF)"),
        ("[1, 2]", "body: must be a JSON object, got array"),
        ('"a string"', "body: must be a JSON object, got string"),
        ("null", "body: must be a JSON object, got null"),
        ("42", "body: must be a JSON object, got number"),
        ('{"x": NaN}', "body: not valid JSON (NaN is not valid JSON)"),
        ('{"x": Infinity}', "body: not valid JSON (Infinity is not valid JSON)"),
        ('{"x": -Infinity}', "body: not valid JSON (-Infinity is not valid JSON)"),
        ("[" * 100_000, "body: nested more than 256 levels deep"),
        ("{" * 100_000, "body: nested more than 256 levels deep"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_rejected(text: str, reason: str) -> None:
    assert rejected(text) == reason


def test_the_exercise_malformed_message_names_every_missing_field() -> None:
    assert rejected('{"foo": "oops_wrong_msg_type", "bar": "123"}') == (
        "user_id: required; device_type: required; ip: required; device_id: required"
    )


def test_a_known_field_given_twice_is_rejected_but_unknown_duplicates_are_ignored() -> None:
    assert rejected('{"ip": "1.2.3.4", ' + body()[1:]) == "ip: given more than once"
    assert accepted('{"x": 1, "x": 2, ' + body()[1:]).ip == "199.172.111.135"


def test_every_known_field_given_twice_is_named_in_field_order() -> None:
    twice = '{"locale": "x", "user_id": "u", "x": 1, "x": 2, ' + body()[1:]
    assert rejected(twice) == "user_id: given more than once; locale: given more than once"


def with_extra(raw_json: str) -> str:
    """A valid body with one more key, "meta", holding `raw_json` as written."""
    return body()[:-1] + ', "meta": ' + raw_json + "}"


@pytest.mark.parametrize(
    "meta",
    [
        '{"ip": "1", "ip": "2"}',  # depth 1
        '{"a": {"user_id": "1", "user_id": "2", "x": 1, "x": 2}}',  # depth 2
        '[{"ip": "1", "ip": "2"}]',  # inside an array
        '[[1, {"a": [{"device_id": 1, "device_id": 2}]}]]',  # deeper, arrays and objects
    ],
)
def test_a_key_repeated_inside_an_ignored_nested_value_is_ignored(meta: str) -> None:
    # Regression (issue 9, 2d): this was rejected as "ip: given more than once".
    assert accepted(with_extra(meta)).ip == "199.172.111.135"


def test_a_known_field_holding_an_object_with_repeated_keys_is_a_wrong_type() -> None:
    text = json.dumps(event(ip="@")).replace('"@"', '{"a": 1, "a": 2}')
    assert rejected(text) == "ip: must be a string, got object"


@pytest.mark.parametrize(
    ("meta", "loads"),
    [
        ("[" * 255 + "]" * 255, True),  # the body object is level 1: 256 in all
        ("[" * 256 + "]" * 256, False),
        ('"' + "[" * 1000 + '"', True),  # brackets inside strings do not count
        (r'"\"' + "[" * 300 + '"', True),  # an escaped quote does not end a string
        ("[" + r'"\"[[", ' * 300 + "1]", True),
        (r'["\\", ' + "[" * 256 + "]" * 256 + "]", False),  # an escaped backslash does
    ],
)
def test_nesting_is_limited_to_max_depth_whatever_the_stack(meta: str, loads: bool) -> None:
    result = validate(with_extra(meta))
    assert isinstance(result, LoginEvent) is loads, result
    if not loads:
        assert isinstance(result, Invalid)
        assert result.reason == f"body: nested more than {MAX_DEPTH} levels deep"


def test_nesting_100_000_deep_is_rejected_without_a_recursion_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert rejected(with_extra(deep)) == "body: nested more than 256 levels deep"
    assert rejected(body()[:-1] + ', "m": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001) == (
        "body: nested more than 256 levels deep"
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("NaN", "user_id"),
        ("NaN", "meta"),
        ("Infinity", "ip"),
        ("Infinity", "meta"),
        ("-Infinity", "locale"),
        ("-Infinity", "meta"),
    ],
)
def test_nan_and_infinity_are_not_json_in_known_and_ignored_keys(raw: str, field: str) -> None:
    text = json.dumps({**event(), field: "@"}).replace('"@"', raw)
    assert rejected(text) == f"body: not valid JSON ({raw} is not valid JSON)"


@pytest.mark.parametrize(
    "raw", ["1e999", "-1e999", "1e" + "9" * 5000, "9" * 4000, "-" + "9" * 4300]
)
def test_out_of_range_numbers_load_in_ignored_keys_and_are_a_wrong_type_in_known_ones(
    raw: str,
) -> None:
    assert accepted(with_extra(raw)).user_id == event()["user_id"]
    assert rejected(json.dumps(event(device_type="@")).replace('"@"', raw)) == (
        "device_type: must be a string, got number"
    )


@pytest.mark.parametrize(
    ("extra", "loads"),
    [
        ('"\\ud800"', True),  # a lone surrogate in an ignored value
        ('{"\\udc00": 1}', True),  # ... and in an ignored key
        ('"\\u0000"', True),  # NUL in an ignored value
        ('"a\\u0001\\u001fb"', True),  # escaped control characters
        ('"' + "x" * 250_000 + '"', True),  # a ~250 KB body (SQS allows 256 KiB)
    ],
)
def test_what_ignored_keys_hold_does_not_matter(extra: str, loads: bool) -> None:
    assert isinstance(validate(with_extra(extra)), LoginEvent) is loads


def test_control_characters_other_than_nul_are_kept_as_given_in_known_fields() -> None:
    # Escaped in the JSON (raw ones are not JSON, see above); PostgreSQL text holds them.
    assert accepted(body(user_id="a\x01\x1f\x7f\x85b")).user_id == "a\x01\x1f\x7f\x85b"
    assert accepted(body(device_id="\x1fdev\t")).device_id == "dev"  # trimmed as whitespace


def test_unpaired_surrogates_in_known_fields_are_rejected() -> None:
    assert rejected(body(device_id="\udfff", locale="\ud800")) == (
        "device_id: must be valid Unicode (it has an unpaired surrogate); "
        "locale: must be valid Unicode (it has an unpaired surrogate)"
    )
    assert rejected(body(ip="1.2.3.4\ud800")) == "ip: must be an IPv4 or IPv6 address"
    assert accepted(body(user_id="\U0001f600")).user_id == "\U0001f600"  # a pair is fine


def test_every_clause_is_reported_not_just_the_first() -> None:
    reason = rejected(body(user_id=1, ip="nope", app_version="x"))
    assert reason.split("; ") == [
        "user_id: must be a string, got number",
        "ip: must be an IPv4 or IPv6 address",
        "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits",
    ]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("199.172.111.135", "199.172.111.135"),
        ("  10.0.0.1\n", "10.0.0.1"),
        ("2001:DB8::0:1", "2001:db8::1"),
        ("2001:db8:0:0:0:0:0:1", "2001:db8::1"),
        ("::FFFF:1.2.3.4", "::ffff:1.2.3.4"),
        ("::", "::"),
    ],
)
def test_ip_is_trimmed_and_canonical(raw: str, canonical: str) -> None:
    assert accepted(body(ip=raw)).ip == canonical


@given(st.ip_addresses(v=4))
def test_the_ipv4_fast_path_agrees_with_ipaddress(address: ipaddress.IPv4Address) -> None:
    assert accepted(body(ip=str(address))).ip == str(address)
    assert accepted(body(ip=f" {address}\t")).ip == str(address)


@given(st.ip_addresses(v=6))
def test_ipv6_is_canonical(address: ipaddress.IPv6Address) -> None:
    assert accepted(body(ip=address.exploded.upper())).ip == canonical_ip(address)


def test_device_id_is_trimmed_and_may_be_256_characters() -> None:
    assert accepted(body(device_id="  593-47-5928\t")).device_id == "593-47-5928"
    assert accepted(body(device_id=" " + "d" * 256 + " ")).device_id == "d" * 256


@pytest.mark.parametrize(
    ("locale", "stored"),
    [(None, None), (ABSENT, None), ("", ""), ("pt-BR", "pt-BR"), ("l" * 32, "l" * 32)],
)
def test_locale_is_optional(locale: object, stored: str | None) -> None:
    assert accepted(body(locale=locale)).locale == stored


@pytest.mark.parametrize(
    ("version", "stored"),
    [
        (None, None),
        (ABSENT, None),
        ("2", 2_000_000),
        ("2.3", 2_003_000),
        ("2.3.0", 2_003_000),
        ("0.8.3", 8_003),
        ("007.010.001", 7_010_001),
        ("2146.999.999", 2_146_999_999),
        ("0", 0),
    ],
)
def test_app_version_is_encoded(version: object, stored: int | None) -> None:
    assert accepted(body(app_version=version)).app_version == stored


def test_a_huge_number_in_an_ignored_key_is_ignored_and_in_a_known_key_is_a_wrong_type() -> None:
    assert accepted(json.dumps(event())[:-1] + ', "extra": ' + "9" * 5000 + "}").user_id
    assert rejected(json.dumps(event()).replace('"RU"', "9" * 5000)) == (
        "locale: must be a string, got number"
    )


def test_other_keys_are_ignored() -> None:
    assert accepted(json.dumps(event(extra="x", nested={"a": [1]}))).user_id == event()["user_id"]


def test_user_id_counts_characters_not_bytes() -> None:
    assert accepted(body(user_id="é" * 128)).user_id == "é" * 128


@given(st.text(max_size=200))
def test_any_text_gives_an_event_or_a_reason_never_an_exception(text: str) -> None:
    result = validate(text)
    assert isinstance(result, LoginEvent | Invalid)


MARK = "\u2603"  # every generated string carries it; no reason may
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40).map(lambda s: MARK + s),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ["user_id", "device_type", "ip", "device_id", "locale", "app_version", "other"]


@given(st.dictionaries(st.sampled_from(FIELDS), json_values))
def test_any_object_gives_an_event_or_a_reason_that_never_quotes_a_value(obj: dict) -> None:
    result = validate(json.dumps(obj, ensure_ascii=False))
    assert isinstance(result, LoginEvent | Invalid)
    if isinstance(result, Invalid):
        assert MARK not in result.reason


def _raw(field: str, raw_json: str) -> str:
    """A valid body whose `field` holds `raw_json` as written."""
    return json.dumps(event(**{field: "@"})).replace('"@"', raw_json)


# One body per kind `validate` can produce; the pipeline's own kinds are in test_metrics.
KIND_EXAMPLES: dict[str, str] = {
    "body:not_json": "{",
    "body:not_object": "[]",
    "body:too_deep": "[" * 300,
    **{
        f"{field}:{rule}": text
        for field in ("user_id", "device_type", "device_id")
        for rule, text in {
            "required": body(**{field: ABSENT}),
            "null": body(**{field: None}),
            "wrong_type": body(**{field: 1}),
            "length": body(**{field: " " * 300}),
            "nul": body(**{field: "a\x00"}),
            "surrogate": body(**{field: "a\udc00"}),
            "duplicate": f'{{"{field}": "x", ' + body()[1:],
        }.items()
    },
    "ip:required": body(ip=ABSENT),
    "ip:null": body(ip=None),
    "ip:wrong_type": body(ip=[]),
    "ip:invalid": body(ip="1.2.3"),
    "ip:zone_index": body(ip="fe80::1%eth0"),
    "ip:duplicate": '{"ip": "1.2.3.4", ' + body()[1:],
    "locale:wrong_type": body(locale=1),
    "locale:length": body(locale="l" * 33),
    "locale:nul": body(locale="\x00"),
    "locale:surrogate": body(locale="\ud800"),
    "locale:duplicate": '{"locale": "x", ' + body()[1:],
    "app_version:wrong_type": _raw("app_version", "1e999"),
    "app_version:invalid": body(app_version="1.x"),
    "app_version:out_of_range": body(app_version="1.1000"),
    "app_version:duplicate": '{"app_version": "1", ' + body()[1:],
}
PIPELINE_KINDS = {"database:refused", "internal:transform_failed"}


def test_every_kind_has_an_example_and_nothing_else_is_a_kind() -> None:
    assert set(KIND_EXAMPLES) | PIPELINE_KINDS == KINDS


@pytest.mark.parametrize(("kind", "text"), KIND_EXAMPLES.items(), ids=list(KIND_EXAMPLES))
def test_each_kind_of_problem_is_reported_with_its_kind(kind: Kind, text: str) -> None:
    result = validate(text)
    assert isinstance(result, Invalid)
    assert result.kind == kind
    assert result.reason.startswith(kind.split(":")[0] + ": ")


def test_json_errors_are_fixed_phrases_even_when_the_parser_quotes_the_input() -> None:
    # json's pure-Python scanner (used when the C one is missing) quotes a character.
    err = json.JSONDecodeError("Invalid \\escape: 'Q'", '{"a": "\\Q"}', 7)
    assert _json_error('{"a": "\\Q"}', err) == (
        "not valid JSON (Invalid \\escape at line 1 column 8)"
    )
    odd = json.JSONDecodeError("something new about 'SECRET'", "SECRET", 0)
    assert _json_error("SECRET", odd) == "not valid JSON (malformed at line 1 column 1)"


@given(st.text(max_size=60).map(lambda s: "{" + MARK + s))
def test_malformed_json_never_quotes_the_body(text: str) -> None:
    result = validate(text)
    assert isinstance(result, Invalid)
    assert MARK not in result.reason
    assert result.kind in KINDS


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\ab\u00e9\ud800', max_size=12)
tricky_json = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3)
    ),
    max_leaves=10,
)


@given(tricky_json, st.integers(MAX_DEPTH - 8, MAX_DEPTH + 2), st.booleans())
def test_the_depth_check_counts_what_the_parser_nests(
    value: object, wrap: int, ascii_only: bool
) -> None:
    text = "[" * wrap + json.dumps(value, ensure_ascii=ascii_only) + "]" * wrap
    assert _too_deep(text) is (wrap + _depth(value) > MAX_DEPTH)

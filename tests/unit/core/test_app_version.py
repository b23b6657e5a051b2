from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.core.app_version import decode_app_version, encode_app_version


@given(st.integers(0, 2146), st.integers(0, 999), st.integers(0, 999))
def test_decode_inverts_encode(major: int, minor: int, patch: int) -> None:
    value = encode_app_version(f"{major}.{minor}.{patch}")
    assert value < 2**31
    assert decode_app_version(value) == f"{major}.{minor}.{patch}"


@given(
    st.tuples(st.integers(0, 2146), st.integers(0, 999), st.integers(0, 999)),
    st.tuples(st.integers(0, 2146), st.integers(0, 999), st.integers(0, 999)),
)
def test_the_encoding_sorts_like_the_version(
    a: tuple[int, int, int], b: tuple[int, int, int]
) -> None:
    ea, eb = (encode_app_version(".".join(map(str, v))) for v in (a, b))
    assert (ea < eb) == (a < b)


def test_decode_refuses_what_encode_cannot_produce() -> None:
    with pytest.raises(ValueError, match="not an encoded app version"):
        decode_app_version(-1)
    with pytest.raises(ValueError, match="not an encoded app version"):
        decode_app_version(2_147_000_000)

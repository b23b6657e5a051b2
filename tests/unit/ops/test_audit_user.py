"""The audit's OS user is the uid's name; LOGNAME/USER are only a claim, kept when they differ."""

from __future__ import annotations

import os
import pwd

import pytest

from login_etl.ops.recovery import OsUser, os_user

ME = pwd.getpwuid(os.geteuid()).pw_name


@pytest.mark.parametrize(
    ("environ", "claimed"),
    [
        ({"LOGNAME": "mallory", "USER": "mallory"}, "mallory"),
        ({"USER": "mallory"}, "mallory"),
        ({"LOGNAME": "", "USER": "mallory"}, "mallory"),  # getpass skips empty ones too
        ({"LOGNAME": ME, "USER": "mallory"}, None),  # getpass would answer ME: no false claim
        ({"LOGNAME": ME, "USER": ME}, None),
        ({}, None),
    ],
)
def test_the_name_comes_from_the_uid_and_a_differing_environment_is_a_claim(
    environ: dict[str, str], claimed: str | None
) -> None:
    assert os_user(environ) == OsUser(name=ME, claimed=claimed)


def test_a_uid_without_a_name_is_recorded_as_its_number(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    assert os_user({"USER": "mallory"}) == OsUser(name=str(os.geteuid()), claimed="mallory")
    assert os_user({}) == OsUser(name=str(os.geteuid()), claimed=None)

"""What the CLI prints is the text it was given: an ARN's `:secret:` is not an emoji code."""

from __future__ import annotations

import pytest

from login_etl.cli.app import err, out

ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf :smile:"


def test_messages_print_verbatim_never_as_emoji(capsys: pytest.CaptureFixture[str]) -> None:
    out.print(ARN, markup=False)
    err.print(ARN, markup=False)
    captured = capsys.readouterr()
    assert captured.out.strip() == ARN
    assert captured.err.strip() == ARN

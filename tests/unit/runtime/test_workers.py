"""Worker processes: an error that ends a child reaches the parent as the class it was raised as."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

from login_etl import errors
from login_etl.errors import ConfigError, KeyFileError, LoginEtlError, RowRefused, UnreadableRecord
from login_etl.runtime.workers import error_report, reraise, run_processes


def through_the_queue(report: dict[str, Any]) -> dict[str, Any]:
    """What the parent gets: multiprocessing queues pickle what is put on them."""
    again: dict[str, Any] = pickle.loads(pickle.dumps(report))  # noqa: S301 - made right here
    return again


def raised(report: dict[str, Any]) -> LoginEtlError:
    with pytest.raises(LoginEtlError) as caught:
        reraise([{"received": 0}, through_the_queue(report)])
    return caught.value


def simple_errors() -> list[type[LoginEtlError]]:
    classes = [getattr(errors, name) for name in errors.__all__]
    return [c for c in classes if c not in (RowRefused, UnreadableRecord)]


@pytest.mark.parametrize("cls", simple_errors(), ids=lambda c: c.__name__)
def test_every_error_class_comes_back_as_itself(cls: type[LoginEtlError]) -> None:
    error = raised(error_report(cls("what to fix")))
    assert type(error) is cls
    assert str(error) == "what to fix"


def test_a_refused_row_keeps_its_sqlstate() -> None:
    error = raised(error_report(RowRefused("PostgreSQL load: value too long", "22001")))
    assert type(error) is RowRefused
    assert (str(error), error.sqlstate) == ("PostgreSQL load: value too long", "22001")


def test_an_unreadable_record_keeps_its_message_id() -> None:
    error = raised(error_report(UnreadableRecord("m-1", "record has no body")))
    assert type(error) is UnreadableRecord
    assert (error.message_id, str(error)) == ("m-1", "record has no body")


def test_an_error_that_does_not_pickle_comes_back_as_its_nearest_class_that_does() -> None:
    class Local(KeyFileError):  # a local class does not pickle
        pass

    error = raised(error_report(Local("the key file is gone")))
    assert type(error) is KeyFileError
    assert str(error) == "the key file is gone"


def test_reports_without_an_error_raise_nothing() -> None:
    reraise([{"received": 3}, {"received": 4}])


def test_a_child_s_config_error_is_raised_in_the_parent_as_its_class(tmp_path: Path) -> None:
    # A spawned worker process that cannot read its key file (checked before any connection).
    overrides = {"keyset_file": tmp_path / "missing.json", "log_level": "ERROR"}
    with pytest.raises(ConfigError) as caught:
        run_processes(1, overrides, until_empty=True, stop=threading.Event())
    assert type(caught.value) is KeyFileError

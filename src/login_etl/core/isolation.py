"""Refused-row isolation, written once: the batch committer and quarantine replay both use it.

One row the database refuses (a data or integrity error the rules did not foresee) must not cost
the rest of its batch. So the batch is committed whole, and only if the database refuses a row
is it committed item by item, each refused item handed to the caller to quarantine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from login_etl.errors import RowRefused

T = TypeVar("T")
R = TypeVar("R")


def commit_isolating(
    items: Sequence[T],
    commit: Callable[[Sequence[T]], R],
    refused: Callable[[T, RowRefused], R],
    *,
    on_split: Callable[[RowRefused], None] | None = None,
) -> list[R]:
    """`commit(items)` at once; if it raises RowRefused, `commit([item])` for each item in turn,
    and `refused(item, error)` for each one refused alone. Returns what each commit (or
    `refused`) returned: one result, or one per item. `on_split` hears of the batch's refusal.

    `commit` must leave nothing behind when it raises (one transaction, or a savepoint); errors
    other than RowRefused propagate.
    """
    try:
        return [commit(items)]
    except RowRefused as err:
        if on_split is not None:
            on_split(err)
    results: list[R] = []
    for item in items:
        try:
            results.append(commit([item]))
        except RowRefused as err:
            results.append(refused(item, err))
    return results

"""Why a message is rejected: problems of a closed set of kinds, and the reason rendered from them.

A rejection is one or more `Problem`s. Each names a subject (a field, or `body`, `database`,
`internal`) and a `Rule` from a closed set, and words the rule broken without the value. Two
things are derived from them, for two audiences:

* `Invalid.reason`, the readable text stored in `rejected_messages.reason` and logged: the
  problems' wording joined by "; ". It may hold counts and JSON positions, never input.
* `Invalid.kind`, the first problem's `subject:rule` (`ip:invalid`, `body:not_json`): the metric
  label. It is one of `KINDS` however varied the input, so label series stay bounded.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, NamedTuple, NewType

# What a problem is about: a field of the body, the body as a whole, or the committer (internal,
# database).
Subject = Literal[
    "body",
    "user_id",
    "device_type",
    "ip",
    "device_id",
    "locale",
    "app_version",
    "database",
    "internal",
]

Kind = NewType("Kind", str)
"""`subject:rule`, one of `KINDS`."""


class Rule(StrEnum):
    """What a problem broke."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    TOO_DEEP = "too_deep"
    REQUIRED = "required"
    NULL = "null"
    WRONG_TYPE = "wrong_type"
    LENGTH = "length"
    NUL = "nul"
    SURROGATE = "surrogate"
    INVALID = "invalid"  # not an address; not MAJOR[.MINOR[.PATCH]]
    ZONE_INDEX = "zone_index"
    OUT_OF_RANGE = "out_of_range"
    DUPLICATE = "duplicate"
    REFUSED = "refused"  # by the database, at insert
    TRANSFORM_FAILED = "transform_failed"  # a bug; the message stays replayable


_STRING = (Rule.WRONG_TYPE, Rule.LENGTH, Rule.NUL, Rule.SURROGATE, Rule.DUPLICATE)
_REQUIRED_STRING = (Rule.REQUIRED, Rule.NULL, *_STRING)
# The rules each subject can break; what `validate` and the committer produce is tested against it.
RULES_OF: dict[Subject, tuple[Rule, ...]] = {
    "body": (Rule.NOT_JSON, Rule.NOT_OBJECT, Rule.TOO_DEEP),
    "user_id": _REQUIRED_STRING,
    "device_type": _REQUIRED_STRING,
    "ip": (
        Rule.REQUIRED,
        Rule.NULL,
        Rule.WRONG_TYPE,
        Rule.INVALID,
        Rule.ZONE_INDEX,
        Rule.DUPLICATE,
    ),
    "device_id": _REQUIRED_STRING,
    "locale": _STRING,
    "app_version": (Rule.WRONG_TYPE, Rule.INVALID, Rule.OUT_OF_RANGE, Rule.DUPLICATE),
    "database": (Rule.REFUSED,),
    "internal": (Rule.TRANSFORM_FAILED,),
}
KINDS: frozenset[Kind] = frozenset(
    Kind(f"{subject}:{rule}") for subject, rules in RULES_OF.items() for rule in rules
)


class RuleBroken(ValueError):
    """Raised by a field rule (see `validate`): which rule, worded without the value. It never
    leaves the core: `validate` turns it into a Problem."""

    def __init__(self, rule: Rule, text: str) -> None:
        super().__init__(text)
        self.rule = rule
        self.text = text


class Problem(NamedTuple):
    """One rule broken: `text` words it for people, `kind` names it for metrics."""

    subject: Subject
    rule: Rule
    text: str  # e.g. "must be 1–128 characters, got 0"; never the value

    @property
    def kind(self) -> Kind:
        return Kind(f"{self.subject}:{self.rule}")

    def __str__(self) -> str:
        return f"{self.subject}: {self.text}"


class Invalid(NamedTuple):
    """Why a message is rejected: every problem found, in field order (at least one)."""

    problems: tuple[Problem, ...]

    @classmethod
    def of(cls, subject: Subject, rule: Rule, text: str) -> Invalid:
        return cls((Problem(subject, rule, text),))

    @property
    def reason(self) -> str:
        """The stored and logged text: `field: rule` clauses joined by '; '."""
        return "; ".join(map(str, self.problems))

    @property
    def kind(self) -> Kind:
        """The first problem's kind: the metric label."""
        return self.problems[0].kind


def transform_failed(err: BaseException) -> Invalid:
    """The rejection of a message whose transform raised (a bug): the exception's type only,
    since its text may quote the input."""
    return Invalid.of("internal", Rule.TRANSFORM_FAILED, f"transform failed ({type(err).__name__})")


def row_refused(sqlstate: str | None) -> Invalid:
    """The rejection of a row the database refused (a constraint the rules did not foresee)."""
    return Invalid.of("database", Rule.REFUSED, f"refused the row (SQLSTATE {sqlstate})")

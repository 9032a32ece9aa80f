"""Typed records of what the database reads return: a visit, its safety alert, a saved
safety value, and a board line joining them.

Made once, at the database edge (``db/storage.py`` builds them from its rows), so the
rest of the app reads attributes, never string keys. Times are naive datetimes in the
clinic's local time, parsed once when the row is read; a visit's status is a ``Status``,
a ``StrEnum``, so ``visit.status == "submitted"`` and a template printing it still work.
This module imports nothing of the app, so ``db/`` may return its records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from enum import StrEnum

# How a stored time reads as text (what storage.local_text gives and pages print).
TIME_TEXT = "%Y-%m-%d %H:%M:%S"


class Status(StrEnum):
    """A visit's stored status (the CHECK of the visits table allows exactly these)."""

    INVITED = "invited"
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    REVIEWED = "reviewed"
    CANCELLED = "cancelled"


def time_text(moment: datetime | None) -> str:
    """A time as the app printed stored times before they were typed ("" for none)."""
    return moment.strftime(TIME_TEXT) if moment is not None else ""


def _check_times(record: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(record, name)
        if value is not None and not isinstance(value, datetime):
            raise TypeError(
                f"{type(record).__name__}.{name} must be a datetime or None, not {value!r}"
            )


def _pick(cls, row: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """The record's fields from a row (a missing column raises KeyError); extra columns,
    e.g. joined names, are left for the caller."""
    return {f.name: row[prefix + f.name] for f in fields(cls)}


@dataclass(frozen=True, kw_only=True, slots=True)
class Visit:
    """One row of the visits table."""

    id: int
    patient_ref: str
    appointment_at: datetime
    psychiatrist_id: int | None = None
    suggested_language: str = ""
    answer_language: str = ""
    token_hash: str
    code_hash: str
    expires_at: datetime
    status: Status = Status.INVITED
    questionnaire_version: str = ""
    safety: str | None = None  # "endorsed", "not_endorsed", "declined", or not asked yet
    current_step: int = 0
    furthest_step: int = 0
    reached_item: str | None = None  # the last question of the furthest screen shown
    measures: str = ""  # the standard measures the invitation includes (ids, spaced)
    measures_offered: str | None = None  # those asked: set at the first start
    measures_language: str | None = None  # the language of that start, which decided
    created_by: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    last_activity_at: datetime | None = None
    submitted_at: datetime | None = None
    reviewed_at: datetime | None = None
    reviewed_by: int | None = None
    cancelled_at: datetime | None = None
    replaces_visit_id: int | None = None
    secret_generation: int = 0
    uuid: str | None = None  # the FHIR id: random, so a restored backup never reuses one
    change_seq: int = 0  # bumped by every change the FHIR export shows (storage triggers)
    changed_us: int = 0  # that change's time, microseconds since 1970 UTC, never backwards

    TIMES = (
        "appointment_at",
        "expires_at",
        "created_at",
        "started_at",
        "last_activity_at",
        "submitted_at",
        "reviewed_at",
        "cancelled_at",
    )

    def __post_init__(self) -> None:
        # An unknown status is refused here, loudly: no page may guess what it means.
        try:
            status = Status(self.status)
        except ValueError:
            raise ValueError(f"visit {self.id}: unknown status {self.status!r}") from None
        object.__setattr__(self, "status", status)
        _check_times(self, self.TIMES)

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Visit:
        """A visit from a row read by storage (times already naive local datetimes)."""
        return cls(**_pick(cls, row))

    @property
    def day(self) -> date:
        """The appointment's day."""
        return self.appointment_at.date()

    @property
    def chosen(self) -> tuple[str, ...]:
        """The standard measures staff included in the invitation (PHQ-9, GAD-7)."""
        return tuple(self.measures.split())

    @property
    def offered(self) -> tuple[str, ...]:
        """The standard measures this patient is asked: those included whose official
        text exists in the language they started in (none before Start)."""
        return tuple((self.measures_offered or "").split())


@dataclass(frozen=True, kw_only=True, slots=True)
class Alert:
    """A visit's safety alert, with the name of whoever acknowledged it (joined)."""

    id: int
    visit_id: int
    created_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: int | None = None
    acknowledged_note: str = ""
    acknowledged_by_name: str | None = None
    escalated_at: datetime | None = None  # when the server's loop found it unacknowledged
    mail_sent_at: datetime | None = None  # the on-call e-mail, once sent
    mail_attempts: int = 0
    mail_next_at: datetime | None = None  # no new try before this (backoff)
    mail_error: str = ""  # the relay's last refusal, for the admin

    TIMES = ("created_at", "acknowledged_at", "escalated_at", "mail_sent_at", "mail_next_at")

    def __post_init__(self) -> None:
        _check_times(self, self.TIMES)

    @classmethod
    def from_row(cls, row: Mapping[str, object], prefix: str = "") -> Alert | None:
        """The alert in a row whose alert columns carry `prefix`; None when a LEFT JOIN
        found no alert."""
        if row[prefix + "id"] is None:
            return None
        return cls(**_pick(cls, row, prefix))


@dataclass(frozen=True, kw_only=True, slots=True)
class BoardVisit:
    """A visit as the board lists it: with its psychiatrist's name and its alert."""

    visit: Visit
    psychiatrist_name: str | None = None
    psychiatrist_email: str | None = None
    alert: Alert | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EarlierAcknowledgement:
    """An acknowledgement of a visit's alert before a worse answer opened it again."""

    raised_at: datetime
    acknowledged_at: datetime
    acknowledged_note: str = ""
    acknowledged_by_name: str | None = None
    id: int = 0
    visit_id: int = 0
    escalated_at: datetime | None = None
    mail_sent_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_times(self, ("raised_at", "acknowledged_at", "escalated_at", "mail_sent_at"))

    def as_alert(self) -> Alert:
        """This cycle of the alert as the alert it was when acknowledged (for the day's
        figures: raised, escalated, acknowledged)."""
        return Alert(
            id=self.id,
            visit_id=self.visit_id,
            created_at=self.raised_at,
            acknowledged_at=self.acknowledged_at,
            acknowledged_note=self.acknowledged_note,
            acknowledged_by_name=self.acknowledged_by_name,
            escalated_at=self.escalated_at,
            mail_sent_at=self.mail_sent_at,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SafetyAnswer:
    """One saved value of the safety question ("declined" for a skip), with its time."""

    value: str
    saved_at: datetime

    def __post_init__(self) -> None:
        _check_times(self, ("saved_at",))

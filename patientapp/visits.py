"""The rules about visits: statuses, expiry, where the patient is, the safety question.

A visit moves invited -> in_progress -> submitted -> reviewed; an open one (invited or in
progress) may be cancelled, or re-issued with a new link and code. The blueprints ask
this module instead of comparing status strings. Time is always passed in as ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from flask_babel import lazy_gettext as _l

from .questionnaire import Questionnaire
from .summary import SAFETY_ENDORSED, safety_status

INVITED = "invited"
IN_PROGRESS = "in_progress"
SUBMITTED = "submitted"
REVIEWED = "reviewed"
CANCELLED = "cancelled"
STATUSES = (INVITED, IN_PROGRESS, SUBMITTED, REVIEWED, CANCELLED)
EXPIRED = "expired"  # what staff see for an open visit past its expiry; never stored
OPEN = (INVITED, IN_PROGRESS)
SENT = (SUBMITTED, REVIEWED)
STATUS_LABELS = {
    INVITED: _l("Invited"),
    IN_PROGRESS: _l("In progress"),
    SUBMITTED: _l("Submitted"),
    REVIEWED: _l("Reviewed"),
    CANCELLED: _l("Cancelled"),
    EXPIRED: _l("Expired"),
}

SAFETY_ITEM = "S1"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


# --- expiry and status ---------------------------------------------------------------------


def expiry(appointment_at: datetime, extra_days: int = 0) -> datetime:
    """The end of the appointment day, plus any extra days the clinic allows."""
    last_day: date = appointment_at.date() + timedelta(days=extra_days)
    return datetime.combine(last_day, time(23, 59, 59))


def is_expired(visit: dict, now: datetime) -> bool:
    """Whether the invitation's last second has passed."""
    return visit["expires_at"] < _stamp(now)


def is_open(visit: dict | None, now: datetime) -> bool:
    """Whether a patient may still answer: not sent, not cancelled, not expired."""
    return visit is not None and visit["status"] in OPEN and not is_expired(visit, now)


def awaiting_start(visit: dict) -> bool:
    """Whether the patient has not pressed Start yet (the welcome page comes first)."""
    return visit["status"] == INVITED


def is_sent(visit: dict) -> bool:
    """Whether the patient sent the answers, so there is a summary to read."""
    return visit["status"] in SENT


def awaiting_review(visit: dict) -> bool:
    """Whether the summary is sent but not yet marked reviewed."""
    return visit["status"] == SUBMITTED


def can_cancel(visit: dict) -> bool:
    return visit["status"] in OPEN


def can_reissue(visit: dict) -> bool:
    """Whether staff may hand over a new link and code: not sent, not cancelled. An
    expired invitation qualifies too, since re-issue sets a new expiry."""
    return visit["status"] in OPEN


def board_status(visit: dict, now: datetime) -> str:
    """The status staff see: the stored one, or EXPIRED for an open visit past expiry."""
    if visit["status"] in OPEN and is_expired(visit, now):
        return EXPIRED
    return visit["status"]


def status_label(status: str) -> str:
    """The translated label of a status from board_status()."""
    return str(STATUS_LABELS[status])


# --- where the patient is ------------------------------------------------------------------


def review_step(definition: Questionnaire) -> int:
    """The step stored while the patient is on the review screen: one past the last
    section. The safety page leads there too."""
    return len(definition.sections) + 1


def on_review(visit: dict, definition: Questionnaire) -> bool:
    return visit["current_step"] >= review_step(definition)


def current_section(visit: dict, definition: Questionnaire) -> int | None:
    """The section number a started visit is on, or None on the review screen."""
    if on_review(visit, definition):
        return None
    return max(visit["current_step"], 1)


# --- the safety question -------------------------------------------------------------------


def safety_outcome(values: Mapping) -> str | None:
    """What saving a section's values says about safety, or None if it has no safety
    question. A skipped question was seen, so it is "declined", never taken for "no"."""
    if SAFETY_ITEM not in values:
        return None
    return safety_status(values, reached=True)


def endorses_safety(values: Mapping) -> bool:
    """Whether these values give a worrying answer, so the patient sees support at once."""
    return values.get(SAFETY_ITEM) in SAFETY_ENDORSED


def may_hold(item_id: str) -> bool:
    """Whether an answer may be kept for talking in person: all but the safety answer,
    which the psychiatrist must always read."""
    return item_id != SAFETY_ITEM

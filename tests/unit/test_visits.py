"""The visit rules on their own: plain functions and a database, with the time passed in."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from patientapp.db import storage
from patientapp.domain import invitations, visits
from patientapp.domain.records import Visit
from patientapp.questionnaire import model as questionnaire

APPOINTMENT = datetime(2026, 11, 25, 14, 30)
BEFORE = datetime(2026, 11, 25, 9, 0)
END_OF_DAY = datetime(2026, 11, 25, 23, 59, 59)


def a_visit(status=visits.INVITED, expires_at=END_OF_DAY, current_step=0) -> Visit:
    return Visit(
        id=1,
        patient_ref="T-1",
        appointment_at=APPOINTMENT,
        token_hash="token",
        code_hash="code",
        expires_at=expires_at,
        created_at=BEFORE,
        status=status,
        current_step=current_step,
    )


def invite(db, appointment=APPOINTMENT, now=BEFORE, extra_days=0) -> invitations.Invitation:
    return visits.create(
        db,
        patient_ref="T-1",
        appointment_at=appointment,
        psychiatrist_id=None,
        suggested_language="",
        extra_days=extra_days,
        created_by=None,
        now=now,
    )


def started(db, now=BEFORE) -> int:
    visit_id = invite(db, now=now).visit_id
    assert visits.start(db, visit_id, language="en", version="test", now=now)
    return visit_id


# --- expiry ----------------------------------------------------------------------------------


def test_an_invitation_works_until_the_last_second_of_the_appointment_day():
    assert visits.expiry(APPOINTMENT) == datetime(2026, 11, 25, 23, 59, 59)
    assert visits.expiry(APPOINTMENT, extra_days=2) == datetime(2026, 11, 27, 23, 59, 59)


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        (datetime(2026, 11, 25, 23, 59, 58), True),
        (datetime(2026, 11, 25, 23, 59, 59), True),
        (datetime(2026, 11, 25, 23, 59, 59, 999_999), True),  # within the last second
        (datetime(2026, 11, 26, 0, 0, 0), False),
        (datetime(2026, 11, 27, 10, 0, 0), False),
    ],
)
def test_expiry_at_the_edge_of_the_day(now, is_open):
    assert visits.is_open(a_visit(), now) is is_open
    assert visits.is_expired(a_visit(), now) is not is_open
    assert visits.board_status(a_visit(), now) == (visits.INVITED if is_open else visits.EXPIRED)


def test_a_created_invitation_expires_at_the_end_of_its_day(db):
    made = invite(db, extra_days=1)
    visit = storage.get_visit(db, made.visit_id)
    assert visit.expires_at == datetime(2026, 11, 26, 23, 59, 59) == made.expires_at
    assert visit.token_hash == invitations.hash_secret(made.token)
    assert visit.code_hash == invitations.hash_secret(made.code)


# --- open or closed by status ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "is_open", "is_sent"),
    [
        (visits.INVITED, True, False),
        (visits.IN_PROGRESS, True, False),
        (visits.SUBMITTED, False, True),
        (visits.REVIEWED, False, True),
        (visits.CANCELLED, False, False),
    ],
)
def test_open_and_sent_by_status(status, is_open, is_sent):
    visit = a_visit(status)
    assert visits.is_open(visit, BEFORE) is is_open
    assert visits.can_reissue(visit) is visits.can_cancel(visit) is is_open
    assert visits.is_sent(visit) is is_sent
    assert visits.board_status(visit, BEFORE) == status


def test_no_visit_is_not_open():
    assert not visits.is_open(None, BEFORE)


def test_only_an_open_visit_shows_as_expired():
    after = datetime(2026, 11, 26, 8, 0)
    assert visits.board_status(a_visit(visits.IN_PROGRESS), after) == visits.EXPIRED
    assert visits.board_status(a_visit(visits.SUBMITTED), after) == visits.SUBMITTED
    assert visits.board_status(a_visit(visits.CANCELLED), after) == visits.CANCELLED
    # Re-issue is about the status only: it gives an expired invitation a new expiry.
    yesterday = datetime(2026, 11, 24, 23, 59, 59)
    assert visits.can_reissue(a_visit(visits.INVITED, expires_at=yesterday))


def test_every_status_has_a_label():
    assert set(visits.STATUS_LABELS) == {*visits.STATUSES, visits.EXPIRED}


def test_the_statuses_are_the_ones_the_schema_allows(db):
    schema = db.execute("SELECT sql FROM sqlite_master WHERE name = 'visits'").fetchone()[0]
    allowed = re.search(r"CHECK \(status IN \(([^)]*)\)\)", schema).group(1)
    assert tuple(re.findall(r"'(\w+)'", allowed)) == visits.STATUSES


# --- where the patient is --------------------------------------------------------------------


def test_the_review_screen_is_one_step_past_the_last_section():
    q = questionnaire.default()
    review = visits.review_step(q)
    assert review == len(q.sections) + 1
    on_review = a_visit(visits.IN_PROGRESS, current_step=review)
    assert visits.on_review(on_review, q) and visits.current_section(on_review, q) is None
    on_last = a_visit(visits.IN_PROGRESS, current_step=len(q.sections))
    assert not visits.on_review(on_last, q)
    assert visits.current_section(on_last, q) == len(q.sections)
    assert visits.current_section(a_visit(visits.IN_PROGRESS, current_step=1), q) == 1


def test_a_saved_last_section_leaves_the_patient_on_review(db):
    q = questionnaire.default()
    visit_id = started(db)
    last = len(q.sections)
    assert visits.save_step(
        db, visit_id, {}, step=last, next_step=visits.review_step(q), now=BEFORE
    )
    assert visits.on_review(storage.get_visit(db, visit_id), q)


# --- the safety outcome of a save ------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome", "alert"),
    [
        ("not_at_all", "not_endorsed", False),
        ("several_days", "endorsed", True),
        ("more_than_half", "endorsed", True),
        ("nearly_every_day", "endorsed", True),
        (None, "declined", False),  # seen and skipped
    ],
)
def test_the_safety_outcome_of_a_save(db, answer, outcome, alert):
    values = {visits.SAFETY_ITEM: answer}
    assert visits.safety_outcome(values) == outcome
    assert visits.endorses_safety(values) is alert
    visit_id = started(db)
    assert visits.save_step(db, visit_id, values, step=10, next_step=11, now=BEFORE)
    assert storage.get_visit(db, visit_id).safety == outcome
    assert (storage.alert_for(db, visit_id) is not None) is alert


def test_a_section_without_the_safety_question_leaves_the_outcome_alone(db):
    assert visits.safety_outcome({"T2": "the dose"}) is None
    visit_id = started(db)
    visits.save_step(
        db, visit_id, {visits.SAFETY_ITEM: "several_days"}, step=10, next_step=11, now=BEFORE
    )
    visits.save_step(db, visit_id, {"T2": "the dose"}, step=1, next_step=2, now=BEFORE)
    assert storage.get_visit(db, visit_id).safety == "endorsed"


def test_the_safety_answer_cannot_be_held_for_in_person():
    assert not visits.may_hold(visits.SAFETY_ITEM)
    assert visits.may_hold("T2")


# --- status changes --------------------------------------------------------------------------


def test_a_visit_moves_from_invited_to_reviewed(db):
    visit_id = invite(db).visit_id
    assert visits.awaiting_start(storage.get_visit(db, visit_id))
    assert not visits.save_step(db, visit_id, {"T2": "x"}, step=1, next_step=2, now=BEFORE)
    assert not visits.submit(db, visit_id, set(), BEFORE)
    assert visits.start(db, visit_id, language="en", version="test", now=BEFORE)
    assert visits.start(db, visit_id, language="en", version="test", now=BEFORE)  # continuing
    assert storage.get_visit(db, visit_id).status == visits.IN_PROGRESS
    assert not visits.mark_reviewed(db, visit_id, 1, BEFORE)
    assert visits.submit(db, visit_id, set(), BEFORE)
    assert visits.awaiting_review(storage.get_visit(db, visit_id))
    assert not visits.submit(db, visit_id, set(), BEFORE)
    assert not visits.start(db, visit_id, language="en", version="test", now=BEFORE)
    assert not visits.cancel(db, visit_id, BEFORE)
    assert visits.mark_reviewed(db, visit_id, None, BEFORE)
    assert storage.get_visit(db, visit_id).status == visits.REVIEWED
    assert not visits.mark_reviewed(db, visit_id, None, BEFORE)


def test_a_cancelled_visit_takes_no_more_answers(db):
    visit_id = started(db)
    assert visits.cancel(db, visit_id, BEFORE)
    assert not visits.cancel(db, visit_id, BEFORE)
    assert not visits.save_step(db, visit_id, {"T2": "x"}, step=1, next_step=2, now=BEFORE)
    assert storage.answers_for(db, visit_id) == ({}, set())
    visits.set_language(db, visit_id, "es")
    assert storage.get_visit(db, visit_id).answer_language == "en"


def test_only_answers_that_may_be_held_are_stored_as_held(db):
    visit_id = started(db)
    visits.save_step(db, visit_id, {"T2": "the dose"}, step=1, next_step=2, now=BEFORE)
    visits.save_in_person(db, visit_id, {"T2"})
    assert storage.answers_for(db, visit_id)[1] == {"T2"}
    assert visits.submit(db, visit_id, set(), BEFORE)
    visits.save_in_person(db, visit_id, {"T2"})  # after sending: nothing changes
    assert storage.answers_for(db, visit_id)[1] == set()


# --- re-issue --------------------------------------------------------------------------------


def secrets_of(db, visit_id) -> tuple[str, str, str]:
    visit = storage.get_visit(db, visit_id)
    return visit.token_hash, visit.code_hash, visit.expires_at


def test_reissue_of_an_invited_visit_replaces_link_and_code(db):
    first = invite(db)
    again = visits.reissue(db, first.visit_id, extra_days=0, now=BEFORE)
    assert again.visit_id == first.visit_id
    assert {again.token, again.code}.isdisjoint({first.token, first.code})
    assert secrets_of(db, first.visit_id) == (
        invitations.hash_secret(again.token),
        invitations.hash_secret(again.code),
        END_OF_DAY,
    )
    assert storage.visit_by_token_hash(db, invitations.hash_secret(first.token)) is None
    assert storage.get_visit(db, first.visit_id).status == visits.INVITED


def test_reissue_of_an_in_progress_visit_keeps_the_answers(db):
    visit_id = started(db)
    visits.save_step(db, visit_id, {"T2": "the dose"}, step=1, next_step=2, now=BEFORE)
    assert visits.reissue(db, visit_id, extra_days=0, now=BEFORE) is not None
    visit = storage.get_visit(db, visit_id)
    assert visit.status == visits.IN_PROGRESS and visit.current_step == 2
    assert storage.answers_for(db, visit_id)[0] == {"T2": "the dose"}


@pytest.mark.parametrize("status", [visits.SUBMITTED, visits.CANCELLED])
def test_reissue_of_a_sent_or_cancelled_visit_changes_nothing(db, status):
    visit_id = started(db)
    if status == visits.SUBMITTED:
        assert visits.submit(db, visit_id, set(), BEFORE)
    else:
        assert visits.cancel(db, visit_id, BEFORE)
    before = secrets_of(db, visit_id)
    assert visits.reissue(db, visit_id, extra_days=0, now=BEFORE) is None
    assert secrets_of(db, visit_id) == before


def test_reissue_after_the_appointment_day_works_until_the_end_of_today(db):
    visit_id = invite(db).visit_id
    two_days_later = datetime(2026, 11, 27, 8, 0)
    assert not visits.is_open(storage.get_visit(db, visit_id), two_days_later)
    again = visits.reissue(db, visit_id, extra_days=1, now=two_days_later)
    assert again.expires_at == datetime(2026, 11, 28, 23, 59, 59)
    assert visits.is_open(storage.get_visit(db, visit_id), two_days_later)


def test_reissue_of_a_missing_visit_is_refused(db):
    assert visits.reissue(db, 999, extra_days=0, now=BEFORE) is None

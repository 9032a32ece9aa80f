"""The typed records storage returns: a visit read back is a Visit with datetimes and a
Status, an unknown status is refused loudly, and the lifecycle table allows exactly the
changes domain/visits.py documents."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pytest

from patientapp.db import storage
from patientapp.domain import invitations, visits
from patientapp.domain.records import Alert, BoardVisit, SafetyAnswer, Status, Visit
from patientapp.domain.visits import ALLOWED, Change

APPOINTMENT = datetime(2026, 11, 25, 14, 30)
NOW = datetime(2026, 11, 25, 9, 0)
TIMES = ("appointment_at", "expires_at", "created_at", "started_at", "submitted_at")


def invite(db, ref="REC-1", now=NOW) -> invitations.Invitation:
    return visits.create(
        db,
        patient_ref=ref,
        appointment_at=APPOINTMENT,
        psychiatrist_id=None,
        suggested_language="es",
        extra_days=0,
        created_by=None,
        now=now,
    )


def sent(db, ref="REC-1", safety="several_days", now=NOW) -> invitations.Invitation:
    """A visit started at `now`, its safety question answered a minute later, sent at +6."""
    made = invite(db, ref, now)
    assert visits.start(db, made.visit_id, language="en", version="test", now=now)
    later = now + timedelta(minutes=1)
    assert visits.save_step(db, made.visit_id, {"S1": safety}, step=10, next_step=11, now=later)
    assert visits.submit(db, made.visit_id, set(), now + timedelta(minutes=6))
    return made


def a_visit(**changes) -> Visit:
    values = {
        "id": 1,
        "patient_ref": "REC-1",
        "appointment_at": APPOINTMENT,
        "token_hash": "token",
        "code_hash": "code",
        "expires_at": datetime(2026, 11, 25, 23, 59, 59),
        "created_at": NOW,
    }
    return Visit(**{**values, **changes})


# --- a row read back -----------------------------------------------------------------------


def test_a_visit_read_back_is_a_visit_with_datetimes_and_a_status(db):
    made = sent(db)
    visit = storage.get_visit(db, made.visit_id)
    assert isinstance(visit, Visit)
    assert type(visit.status) is Status and visit.status is Status.SUBMITTED
    assert visit.status == "submitted" and f"{visit.status}" == "submitted"  # still a string
    for name in TIMES:
        moment = getattr(visit, name)
        assert isinstance(moment, datetime) and moment.tzinfo is None, name
    assert visit.appointment_at == APPOINTMENT and visit.day == date(2026, 11, 25)
    assert visit.expires_at == datetime(2026, 11, 25, 23, 59, 59) == made.expires_at
    assert (visit.created_at, visit.started_at) == (NOW, NOW)
    assert visit.submitted_at == NOW + timedelta(minutes=6)
    assert visit.reviewed_at is None and visit.cancelled_at is None
    assert (visit.patient_ref, visit.suggested_language) == ("REC-1", "es")
    assert visit.safety == "endorsed"
    # Every column of the table is on the record, no more and no fewer.
    columns = [row[1] for row in db.execute("PRAGMA table_info(visits)").fetchall()]
    assert sorted(columns) == sorted(f.name for f in dataclasses.fields(Visit))


def test_every_visit_read_returns_records(db):
    first = sent(db, "REC 2", safety="not_at_all")
    second = sent(db, "rec2", now=NOW + timedelta(minutes=10))
    token_hash = storage.get_visit(db, second.visit_id).token_hash
    assert storage.visit_by_token_hash(db, token_hash).id == second.visit_id
    code_hash = invitations.hash_secret(second.code)
    assert storage.visit_by_code_hash(db, code_hash).id == second.visit_id
    previous = storage.previous_visit(db, storage.get_visit(db, second.visit_id))
    assert isinstance(previous, Visit) and previous.id == first.visit_id
    between = storage.visits_between(db, date(2026, 11, 25), date(2026, 11, 25))
    updated = storage.exported_visits(db, statuses=("submitted", "reviewed"), limit=10)
    for found in (between, updated):
        assert [v.id for v in found] == [first.visit_id, second.visit_id]
        assert all(isinstance(v, Visit) for v in found)


def test_the_board_lines_carry_the_visit_its_psychiatrist_and_its_alert(db):
    quiet = sent(db, "QUIET", safety="not_at_all")
    alerted = sent(db, "ALERT", now=NOW + timedelta(minutes=10))
    lines = storage.visits_for_day(db, "2026-11-25")
    assert all(isinstance(line, BoardVisit) for line in lines)
    by_id = {line.visit.id: line for line in lines}
    assert by_id[quiet.visit_id].alert is None
    alert = by_id[alerted.visit_id].alert
    assert isinstance(alert, Alert) and alert.visit_id == alerted.visit_id
    assert alert.created_at == NOW + timedelta(minutes=11) and alert.acknowledged_at is None
    [waiting] = storage.open_alerts(db)
    assert waiting.visit.patient_ref == "ALERT" and waiting.alert == alert
    assert storage.alert_for(db, alerted.visit_id) == alert
    acknowledged = NOW + timedelta(minutes=20)
    assert storage.acknowledge_alert(db, alerted.visit_id, None, acknowledged, note="seen")
    alert = storage.alert_for(db, alerted.visit_id)
    assert (alert.acknowledged_at, alert.acknowledged_note) == (acknowledged, "seen")
    assert storage.open_alerts(db) == []


def test_safety_answers_are_records_with_their_time(db):
    made = sent(db)
    assert storage.safety_answers(db, made.visit_id) == [
        SafetyAnswer(value="several_days", saved_at=NOW + timedelta(minutes=1))
    ]


# --- refused loudly ------------------------------------------------------------------------


def test_an_unknown_status_in_a_row_is_refused(db):
    made = invite(db)
    # The schema's CHECK keeps it out; a file changed by hand need not have one.
    db.execute("PRAGMA ignore_check_constraints = ON")
    db.execute("UPDATE visits SET status = 'paused' WHERE id = ?", (made.visit_id,))
    db.conn.commit()
    with pytest.raises(ValueError, match=f"visit {made.visit_id}: unknown status 'paused'"):
        storage.get_visit(db, made.visit_id)
    with pytest.raises(ValueError, match="unknown status 'expired'"):
        a_visit(status="expired")  # what the board shows; never stored


def test_a_time_as_text_is_refused():
    with pytest.raises(TypeError, match="appointment_at must be a datetime"):
        a_visit(appointment_at="2026-11-25 14:30:00")
    with pytest.raises(TypeError, match="saved_at must be a datetime"):
        SafetyAnswer(value="not_at_all", saved_at="2026-11-25 09:01:00")


def test_a_record_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        a_visit().status = Status.REVIEWED


# --- the lifecycle table -------------------------------------------------------------------

# As the module docstring says: invited -> in_progress -> submitted -> reviewed; an open
# visit may be cancelled or re-issued; only one in progress takes answers or is sent.
DOCUMENTED = {
    Status.INVITED: {
        Change.START: Status.IN_PROGRESS,
        Change.SET_LANGUAGE: Status.INVITED,
        Change.REISSUE: Status.INVITED,
        Change.CANCEL: Status.CANCELLED,
    },
    Status.IN_PROGRESS: {
        Change.START: Status.IN_PROGRESS,
        Change.SET_LANGUAGE: Status.IN_PROGRESS,
        Change.ANSWER: Status.IN_PROGRESS,
        Change.SUBMIT: Status.SUBMITTED,
        Change.REISSUE: Status.IN_PROGRESS,
        Change.CANCEL: Status.CANCELLED,
    },
    Status.SUBMITTED: {Change.REVIEW: Status.REVIEWED},
    Status.REVIEWED: {},
    Status.CANCELLED: {},
}


def test_the_table_has_every_status_and_the_documented_changes():
    assert list(ALLOWED) == list(Status)
    assert ALLOWED == DOCUMENTED


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("change", list(Change))
def test_allows_and_refuses_as_the_table_says(status, change):
    visit = a_visit(status=status)
    allowed = change in DOCUMENTED[status]
    assert visits.allows(visit, change) is allowed
    if allowed:
        assert visits.after(status, change) == DOCUMENTED[status][change]
    else:
        with pytest.raises(KeyError):
            visits.after(status, change)
    assert not visits.allows(None, change)


def test_the_helpers_follow_the_table():
    for status in Status:
        visit = a_visit(status=status)
        assert visits.can_cancel(visit) is (Change.CANCEL in DOCUMENTED[status])
        assert visits.can_reissue(visit) is (Change.REISSUE in DOCUMENTED[status])
        assert visits.awaiting_review(visit) is (Change.REVIEW in DOCUMENTED[status])


def status_of(db, visit_id) -> Status:
    return storage.get_visit(db, visit_id).status


def test_each_change_writes_the_status_the_table_names(db):
    visit_id = invite(db).visit_id
    assert visits.start(db, visit_id, language="en", version="test", now=NOW)
    assert status_of(db, visit_id) == visits.after(Status.INVITED, Change.START)
    assert visits.submit(db, visit_id, set(), NOW)
    assert status_of(db, visit_id) == visits.after(Status.IN_PROGRESS, Change.SUBMIT)
    assert visits.mark_reviewed(db, visit_id, None, NOW)
    assert status_of(db, visit_id) == visits.after(Status.SUBMITTED, Change.REVIEW)
    # Refused changes write nothing.
    assert not visits.cancel(db, visit_id, NOW)
    assert not visits.start(db, visit_id, language="en", version="test", now=NOW)
    assert visits.reissue(db, visit_id, extra_days=0, now=NOW) is None
    assert status_of(db, visit_id) is Status.REVIEWED
    cancelled = invite(db, "REC-2").visit_id
    assert visits.cancel(db, cancelled, NOW)
    assert status_of(db, cancelled) == visits.after(Status.INVITED, Change.CANCEL)
    assert not visits.submit(db, cancelled, set(), NOW)
    assert status_of(db, cancelled) is Status.CANCELLED


def test_expiry_is_to_the_second(db):
    visit = a_visit()
    assert visits.is_open(visit, datetime(2026, 11, 25, 23, 59, 59, 999_999))
    assert not visits.is_open(visit, datetime(2026, 11, 26, 0, 0, 0))

"""The rules about visits: statuses, expiry, the safety outcome of a save, re-issue.

A visit moves invited -> in_progress -> submitted -> reviewed; an open one (invited or in
progress) may be cancelled, or re-issued with a new link and code. ``ALLOWED`` is the one
table of which change each status allows and the status it leaves. The blueprints, the
CLI and the benchmark ask this module; storage only runs the SQL. Every change that
depends on the current status reads it inside ``storage.write(db)``, so two requests
cannot both make it, and the caller's audit entry joins that same transaction. Time is
always passed in as ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from flask_babel import lazy_gettext as _l

from patientapp.db import storage
from patientapp.domain import alerts, invitations
from patientapp.domain.invitations import Invitation
from patientapp.domain.records import Status, Visit
from patientapp.questionnaire.model import Questionnaire, default
from patientapp.summary import rules as summary
from patientapp.summary.rules import DECLINED, SAFETY_ENDORSED, safety_status

INVITED = Status.INVITED
IN_PROGRESS = Status.IN_PROGRESS
SUBMITTED = Status.SUBMITTED
REVIEWED = Status.REVIEWED
CANCELLED = Status.CANCELLED
STATUSES = tuple(Status)
EXPIRED = "expired"  # what staff see for an open visit past its expiry; never stored
OPEN = (INVITED, IN_PROGRESS)  # a patient may still answer (until the expiry)
SENT = (SUBMITTED, REVIEWED)  # there is a summary to read
STATUS_LABELS = {
    INVITED: _l("Invited"),
    IN_PROGRESS: _l("In progress"),
    SUBMITTED: _l("Submitted"),
    REVIEWED: _l("Reviewed"),
    CANCELLED: _l("Cancelled"),
    EXPIRED: _l("Expired"),
}

SAFETY_ITEM = "S1"
DRAFT_SCREEN = "screen"  # a draft's field naming the screen it was typed on (as views')


class Change(StrEnum):
    """What can be done to a visit; ALLOWED says when."""

    START = "start"  # the patient presses Start, or continues: answering from step 1
    SET_LANGUAGE = "set_language"  # the language the patient answers in
    ANSWER = "answer"  # save a step, keep answers for in person, keep a draft
    SUBMIT = "submit"  # send the answers
    REISSUE = "reissue"  # a new link and code (who may: may_reissue)
    CANCEL = "cancel"  # staff withdraw the invitation
    REVIEW = "review"  # the psychiatrist has read the summary


# The changes each status allows, and the status each leaves the visit in. Every change
# below asks this table (inside its write transaction); nothing else allows a change.
ALLOWED: dict[Status, dict[Change, Status]] = {
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


def allows(visit: Visit | None, change: Change) -> bool:
    """Whether the visit's status allows the change (no visit allows none)."""
    return visit is not None and change in ALLOWED[visit.status]


def after(status: Status, change: Change) -> Status:
    """The status a change leaves; KeyError for a change the status does not allow."""
    return ALLOWED[status][change]


# --- expiry and status ---------------------------------------------------------------------


def expiry(appointment_at: datetime, extra_days: int = 0) -> datetime:
    """The end of the appointment day, plus any extra days the clinic allows."""
    last_day: date = appointment_at.date() + timedelta(days=extra_days)
    return datetime.combine(last_day, time(23, 59, 59))


def is_expired(visit: Visit, now: datetime) -> bool:
    """Whether the invitation's last second has passed (to the second: the expiry's own
    second, 23:59:59.999, still counts)."""
    return visit.expires_at < now.replace(microsecond=0)


def is_open(visit: Visit | None, now: datetime) -> bool:
    """Whether a patient may still answer: not sent, not cancelled, not expired."""
    return visit is not None and visit.status in OPEN and not is_expired(visit, now)


def awaiting_start(visit: Visit) -> bool:
    """Whether the patient has not pressed Start yet (the welcome page comes first)."""
    return visit.status == INVITED


def went_past_first_screen(visit: Visit) -> bool:
    """Whether the patient pressed Next at least once, so some answers are saved (Start
    alone saves none)."""
    return not is_sent(visit) and visit.furthest_step > 1


def is_sent(visit: Visit) -> bool:
    """Whether the patient sent the answers, so there is a summary to read."""
    return visit.status in SENT


def awaiting_review(visit: Visit) -> bool:
    """Whether the summary is sent but not yet marked reviewed."""
    return allows(visit, Change.REVIEW)


def can_cancel(visit: Visit) -> bool:
    return allows(visit, Change.CANCEL)


def can_reissue(visit: Visit) -> bool:
    """Whether staff may hand over a new link and code: not sent, not cancelled. An
    expired invitation qualifies too, since re-issue sets a new expiry."""
    return allows(visit, Change.REISSUE)


def may_reissue(visit: Visit, role: str) -> bool:
    """Whether this staff role may re-issue: a visit in progress only by a psychiatrist or
    an admin, since whoever opens the new link reads and changes the answers so far."""
    return can_reissue(visit) and (visit.status == INVITED or role in ("psychiatrist", "admin"))


def board_status(visit: Visit, now: datetime) -> str:
    """The status staff see: the stored one, or EXPIRED for an open visit past expiry."""
    if visit.status in OPEN and is_expired(visit, now):
        return EXPIRED
    return visit.status


def status_label(status: str) -> str:
    """The translated label of a status from board_status()."""
    return str(STATUS_LABELS[status])


# --- where the patient is ------------------------------------------------------------------


def review_step(definition: Questionnaire) -> int:
    """The step stored while the patient is on the review screen: one past the last
    section. The safety page leads there too."""
    return len(definition.sections) + 1


def on_review(visit: Visit, definition: Questionnaire) -> bool:
    return visit.current_step >= review_step(definition)


def reached_review(visit: Visit, definition: Questionnaire) -> bool:
    """Whether the patient went past the last screen (the safety question's) by its own
    button: only then do the patient pages show the review and send (a typed /review
    before that would send a visit whose safety question was never asked)."""
    return visit.furthest_step >= review_step(definition)


def current_section(visit: Visit, definition: Questionnaire) -> int | None:
    """The section number a started visit is on, or None on the review screen."""
    if on_review(visit, definition):
        return None
    return max(visit.current_step, 1)


def progress(visit: Visit, step: int, definition: Questionnaire | None = None) -> tuple[int, int]:
    """(place, count) of step `step` among the sections this visit asks: a standard
    measure it does not ask is no step of it ("step 8 of 8", never "10 of 10")."""
    definition = definition or default()
    asked = [
        n
        for n, section in enumerate(definition.sections, start=1)
        if not section.items or not section.items[0].instrument or section.id in visit.offered
    ]
    return sum(1 for n in asked if n <= step), len(asked)


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


# --- changes -------------------------------------------------------------------------------


def _secrets() -> tuple[str, str]:
    return invitations.new_token(), invitations.new_code()


def create(
    db,
    *,
    patient_ref: str,
    appointment_at: datetime,
    psychiatrist_id: int | None,
    suggested_language: str,
    extra_days: int,
    created_by: int | None,
    now: datetime,
    replaces_visit_id: int | None = None,
    measures: tuple[str, ...] = (),
) -> Invitation:
    """Invite a patient: a new visit with fresh secrets; the plain token and code exist
    only in the result. ``measures``: the standard measures it includes (instrument ids;
    unknown ones are dropped)."""
    known = [i.id for i in default().instruments]
    measures = tuple(m for m in known if m in measures)
    token, code = _secrets()
    expires_at = expiry(appointment_at, extra_days)
    with storage.write(db):
        visit_id = storage.create_visit(
            db,
            patient_ref=patient_ref,
            appointment_at=appointment_at,
            psychiatrist_id=psychiatrist_id,
            suggested_language=suggested_language,
            token_hash=invitations.hash_secret(token),
            code_hash=invitations.hash_secret(code),
            expires_at=expires_at,
            created_by=created_by,
            now=now,
            replaces_visit_id=replaces_visit_id,
            measures=measures,
        )
    return Invitation(visit_id, token, code, expires_at)


def reissue(
    db, visit_id: int, *, extra_days: int, now: datetime, role: str = ""
) -> Invitation | None:
    """New link and code for a visit not yet sent: the old ones stop working, answers so
    far stay. The new ones work until the end of the appointment day (or of today, if
    that has passed) plus extra_days. None when the visit cannot be re-issued (by this
    staff role, when one is given)."""
    token, code = _secrets()
    with storage.write(db):
        visit = storage.get_visit(db, visit_id)
        if not can_reissue(visit) or (role and not may_reissue(visit, role)):
            return None
        expires_at = expiry(max(visit.appointment_at, now), extra_days)
        storage.set_secrets(
            db, visit_id, invitations.hash_secret(token), invitations.hash_secret(code), expires_at
        )
    return Invitation(visit_id, token, code, expires_at)


def cancel(db, visit_id: int, now: datetime) -> bool:
    """Cancel an invitation not yet sent; False when there was nothing to cancel, or while
    its safety alert is open: cancelled, the visit would leave the board and the alert
    with it, and nobody could acknowledge it (acknowledge first, then cancel)."""
    with storage.write(db):
        if not allows(storage.get_visit(db, visit_id), Change.CANCEL):
            return False
        if has_open_alert(db, visit_id):
            return False
        storage.set_cancelled(db, visit_id, now)
    return True


def has_open_alert(db, visit_id: int) -> bool:
    """Whether the visit has a safety alert nobody has acknowledged yet."""
    alert = storage.alert_for(db, visit_id)
    return alert is not None and alert.acknowledged_at is None


def start(
    db, visit_id: int, *, language: str, version: str, now: datetime, first: str | None = None
) -> bool:
    """The patient presses Start (or continues): the visit is in progress from step 1,
    whose screen ends with question `first`. False when it is no longer open.

    The first Start settles which standard measures are asked: those the invitation
    includes that have an official text in ``language``. A later language switch never
    changes them, so nothing answered is ever unasked."""
    with storage.write(db):
        visit = storage.get_visit(db, visit_id)
        if not allows(visit, Change.START):
            return False
        storage.set_started(
            db,
            visit_id,
            language=language,
            version=version,
            now=now,
            first=first,
            offered=offered_measures(visit, language),
        )
    return True


def offered_measures(visit: Visit, language: str, definition: Questionnaire | None = None):
    """The standard measures the invitation includes that may be asked in ``language``."""
    definition = definition or default()
    return tuple(
        i.id for i in definition.instruments if i.id in visit.chosen and i.offered_in(language)
    )


def asked_measures(visit: Visit, language: str, definition: Questionnaire | None = None):
    """The instruments this patient is (or, before Start, would be) asked: those offered
    once started, else those included that ``language`` has an official text for."""
    definition = definition or default()
    ids = (
        visit.offered
        if visit.measures_offered is not None
        else offered_measures(visit, language, definition)
    )
    return tuple(i for i in definition.instruments if i.id in ids)


def set_language(db, visit_id: int, language: str) -> None:
    """Remember the language the patient answers in, while the visit is open."""
    with storage.write(db):
        if allows(storage.get_visit(db, visit_id), Change.SET_LANGUAGE):
            storage.set_answer_language(db, visit_id, language)


def _takes_answers(visit: Visit | None) -> bool:
    return allows(visit, Change.ANSWER)


def save_step(
    db,
    visit_id: int,
    values: Mapping[str, object],
    *,
    step: int,
    next_step: int,
    now: datetime,
    language: str = "",
    definition: Questionnaire | None = None,
    shown: str | None = None,
    screen: int | None = None,
) -> bool:
    """Store one section's values (None removes an answer) and move the patient on.
    `shown`: the last question of the screen the patient is sent to (the review: the
    last of all), kept when it lies further than any screen shown before. `screen`: the
    screen of the step saved (None: the whole step); only its draft goes.

    A section with the safety question records its outcome on the visit, and a worrying
    answer opens an alert for the staff board. An answer that leaves items unasked (M0
    "no") keeps their earlier answers stored but unasked: no page, summary or export
    reads them while it stands (``Questionnaire.not_asked``), "yes" again shows them, and
    sending removes them for good (``submit``). Returns False, storing nothing, when the
    visit no longer takes answers.
    """
    definition = definition or default()
    with storage.write(db):
        visit = storage.get_visit(db, visit_id)
        if not _takes_answers(visit):
            return False
        values = with_not_asked_removed(values, definition, visit.offered)
        safety = safety_outcome(values)
        storage.save_answers(db, visit_id, values, now=now, language=language)
        _forget_draft(db, visit, step, screen)
        reached = further(definition, visit.reached_item, shown)
        storage.set_step(
            db, visit_id, step=step, next_step=next_step, now=now, safety=safety, reached=reached
        )
        added = safety is not None and _remember_safety_answer(db, visit_id, values, now)
        if safety == "endorsed":
            storage.raise_alert(db, visit_id, now)
            history = storage.safety_answers(db, visit_id)
            if added and alerts.reopens(storage.alert_for(db, visit_id), history):
                storage.reopen_alert(db, visit_id, now)
                storage.audit(db, "alert_reopened", now=now, actor="patient", visit_id=visit_id)
    return True


def further(definition: Questionnaire, kept: str | None, shown: str | None) -> str | None:
    """Of two questions, the one later in the questionnaire (the furthest shown); None
    when neither is one of its questions."""
    order = {item_id: n for n, item_id in enumerate(definition.item_ids)}
    known = [i for i in (kept, shown) if i in order]
    return max(known, key=order.__getitem__) if known else None


def with_not_asked_removed(
    values: Mapping[str, object], definition: Questionnaire, measures=()
) -> dict:
    """The values to save, without those of items their own answers leave unasked: M0
    posted as "no" drops whatever is posted for M1-M5 and P1 (their stored answers stay,
    unasked, until "yes" shows them again or sending removes them). Answers that decide
    nothing leave the values as they are, and a measure's items are posted only when the
    visit offers it (``measures``): one not offered was never shown, so whatever a form
    posts for it is simply dropped."""
    unasked = definition.not_asked(values, measures)
    return {k: v for k, v in values.items() if k not in unasked}


def _forget_draft(db, visit: Visit, step: int, screen: int | None) -> None:
    """A saved screen's draft is done with; a draft typed on another screen of the step
    stays, for when the patient comes to it (a whole step saved takes every draft)."""
    kept = storage.draft_for(db, visit.id, step, visit.secret_generation)
    typed_on = (kept or {}).get(DRAFT_SCREEN, [""])[0]
    if screen is None or kept is None or typed_on in ("", str(screen)):
        storage.delete_drafts(db, visit.id, step)


def unasked_answers(answers: Mapping, definition: Questionnaire, measures=()) -> set[str]:
    """The stored answers an answer leaves unasked (M0 "no": M1-M5 and P1 answered before):
    kept while the visit is open, in case "no" was a slip, never sent."""
    return set(definition.not_asked(answers, measures)) & set(answers)


def _remember_safety_answer(db, visit_id: int, values: Mapping, now: datetime) -> bool:
    """Add the saved safety value to the visit's history unless it repeats the last one;
    whether it was added."""
    value = values.get(SAFETY_ITEM)
    value = str(value) if summary.is_answered(value) else DECLINED
    history = storage.safety_answers(db, visit_id)
    if not history or history[-1].value != value:
        storage.record_safety_answer(db, visit_id, value, now)
        return True
    return False


def save_in_person(db, visit_id: int, in_person: set[str]) -> None:
    """Remember which answers the patient keeps for talking in person."""
    with storage.write(db):
        if _takes_answers(storage.get_visit(db, visit_id)):
            storage.set_in_person(db, visit_id, in_person)


def submit(db, visit_id: int, in_person: set[str], now: datetime) -> bool:
    """Record the in-person choices and send; False when already sent or closed. Answers
    an answer leaves unasked (kept while M0 was "no") are removed: nothing unasked is
    ever stored in a sent visit."""
    with storage.write(db):
        visit = storage.get_visit(db, visit_id)
        if not allows(visit, Change.SUBMIT):
            return False
        answers, _held = storage.answers_for(db, visit_id)
        # Answers kept while "no" might have been a slip: unasked, so never sent.
        unasked = unasked_answers(answers, default(), visit.offered)
        storage.save_answers(db, visit_id, dict.fromkeys(unasked), now=now, language="")
        storage.set_in_person(db, visit_id, in_person - unasked)
        storage.set_submitted(db, visit_id, now)
        storage.delete_drafts(db, visit_id)
        _keep_measure_totals(db, storage.get_visit(db, visit_id), in_person)
    return True


def _keep_measure_totals(db, visit: Visit, in_person: set[str]) -> None:
    """At sending, each offered measure's total (held answers unused): its answers no
    longer change, and the FHIR Observation search pages by these rows."""
    from patientapp.summary import measures  # the summary's scoring, shared

    if not visit.offered:
        return
    answers, _held = storage.answers_for(db, visit.id)
    found = measures.scores(default(), visit.offered, answers, in_person)
    storage.save_measure_totals(
        db, visit.id, {s.instrument.id: s.total for s in found if s.total is not None}
    )


def save_draft(db, visit: Visit, step: int, fields: dict[str, list[str]], now: datetime) -> bool:
    """Keep what was typed on a step without saving it as answers: a draft never reaches
    the summary, the safety alert or the board until the patient taps Next. False when
    the visit no longer takes answers or was re-issued meanwhile."""
    with storage.write(db):
        current = storage.get_visit(db, visit.id)
        if not _takes_answers(current) or current.secret_generation != visit.secret_generation:
            return False
        storage.save_draft(db, visit.id, step, visit.secret_generation, fields, now)
    return True


def draft_for(db, visit: Visit, step: int) -> dict[str, list[str]] | None:
    """The draft of one step typed under the visit's current secrets, if any."""
    return storage.draft_for(db, visit.id, step, visit.secret_generation)


def has_draft(db, visit: Visit) -> bool:
    return storage.has_draft(db, visit.id, visit.secret_generation)


def mark_reviewed(db, visit_id: int, user_id: int, now: datetime) -> bool:
    """The psychiatrist has read the summary; False unless it was awaiting review."""
    with storage.write(db):
        if not allows(storage.get_visit(db, visit_id), Change.REVIEW):
            return False
        storage.set_reviewed(db, visit_id, user_id, now)
    return True

"""The fullest one-page summary a patient can produce, stored through the app's own Python
API (patientapp.domain.invitations + patientapp.db.storage), exactly as the patient pages store it.

Used by the staff browser tests (the one-page print check) and by bench/run.py (summary
render time), so both measure the same page. Only patientapp is imported here: no
Playwright, no pytest, no relative imports (bench/run.py loads this file by path).

What "fullest" means, item by item:
  * every multi-choice option that can be picked together (T1 is limited to 3, so its
    three longest labels; exclusive choices like "none" are left out),
  * the longest label of every single choice, scales answered,
  * 6 medicines with 60-character names, each with a feeling,
  * 300-character free texts made of real words in T2, F2 and H1,
  * S1 "nearly_every_day", so the safety banner shows (and its alert, acknowledged: the
    acknowledgement is printed on the banner, the Acknowledge button is not), after a
    history of three other saved values (SAFETY_HISTORY), so the banner carries its
    "first answered ... changed to ..." lines,
  * the version 2 items (P3, M6, W3, R4, R5) answered like the rest, every flag firing
    (R4 "yes_talk" and P3 "much_worse" included), so the "Also noted" line is longest,
  * nothing held for "in person" (that would hide content and shorten the page),
  * both standard measures (GAD-7, PHQ-9) with totals in their longest bands' words,
    after as many earlier visits with totals as the Measures line shows (their numbers
    and dates, the chart, the change since the last),
  * a previous submitted visit four weeks earlier with the same patient reference and
    other M4 / R1 / M2 / M5 answers, so "Since last visit" lists every kind of change:
    M4, R1, M2, new worries, worries no longer named, and the stance. For the "no longer
    named" line, the current visit names every worry but one ("Paying for it or being
    able to get it"), which the previous visit named: one label less in the block, one
    more line of changes, which is the fuller page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from patientapp.db import storage
from patientapp.domain import visits
from patientapp.questionnaire import model as questionnaire

SENTENCES = {
    "T2": (
        "I want to talk about whether the dose is still right for me, because the "
        "mornings are hard and I feel slow at work. "
    ),
    "F2": (
        "In my family people say that medicine for the mind is a weakness, and my "
        "grandmother prays for me instead of asking how I am. "
    ),
    "H1": (
        "I would sleep through the night, go back to my evening classes and call my "
        "sister again without feeling ashamed. "
    ),
}
TEXT_LENGTH = 300
NAME_LENGTH = 60
MEDICINES = (
    "Quetiapine fumarate extended-release tablets",
    "Sertraline hydrochloride oral",
    "Lamotrigine chewable dispersible tablets",
    "Lithium carbonate slow release",
    "Aripiprazole long-acting injection monthly",
    "Propranolol hydrochloride tablets",
)
FEELINGS = ("not_helping", "not_sure", "mixed", "helping", "not_helping", "not_sure")
MINUTES_TAKEN = 7
# Saved for the safety question before the final answer: a worrying one, a change, a skip.
SAFETY_HISTORY = ("more_than_half", "not_at_all", "")
PREVIOUS_WEEKS = 4
MEASURES = ("gad7", "phq9")
# Earlier visits with measure totals, every four weeks before the previous one: with the
# previous, as many as the page's Measures line shows (summary.measures.EARLIER_SHOWN).
EARLIER_TOTALS = ("several_days", "nearly_every_day", "not_at_all")
LEFT_OUT_WORRY = "cost_access"  # named only last time: "Worries no longer named"

PREVIOUS_ANSWERS = {
    "T1": ["calm"],
    "T2": "How long I have to keep taking this.",
    "M1": [{"name": "Sertraline", "feeling": "helping"}],
    "M2": "positive",
    "M3": ["helper"],
    "M4": 2,
    "M5": [LEFT_OUT_WORRY],
    "P1": "as_prescribed",
    "P2": ["never"],
    "F1": ["supportive"],
    "F2": {"choice": "no", "text": ""},
    "F3": ["helped_a_lot"],
    "W1": ["stress"],
    "W2": "not_sure",
    "H1": "I would sleep better.",
    "H2": ["none"],
    "R1": 4,
    "R2": "together",
    "R3": ["how_long"],
    "S1": "not_at_all",
}


def realistic_text(sentence: str, length: int = TEXT_LENGTH) -> str:
    """Exactly ``length`` characters: a realistic sentence repeated, ending with a full stop."""
    text = (sentence * (length // len(sentence) + 1))[: length - 1].rstrip()
    return text.ljust(length - 1, ".")[: length - 1] + "."


def medicine_name(base: str, number: int) -> str:
    """A plausible medicine name of exactly NAME_LENGTH characters."""
    name = f"{base} {number * 50} mg, twice daily with food as directed"[:NAME_LENGTH]
    return name[:-1] + "." if name.endswith(" ") else name.ljust(NAME_LENGTH, ".")


def _longest(item, count: int = 1) -> list[str]:
    """The ``count`` longest non-exclusive labels, in questionnaire order."""
    choices = [c for c in item.choices if not c.exclusive]
    picked = {c.id for c in sorted(choices, key=lambda c: -len(c.label))[:count]}
    return [c.id for c in choices if c.id in picked]


def maximal_answers(q=None) -> dict:
    """Stored answers (by item id) for the fullest summary."""
    q = q or questionnaire.default()
    answers: dict = {}
    for item_id, item in q.items.items():
        if item.type == "multi":
            every = [c.id for c in item.choices if not c.exclusive]
            limit = item.max or len(every)
            answers[item_id] = _longest(item, limit) if limit < len(every) else every
        elif item.type == "single":
            answers[item_id] = _longest(item)[0]
    answers["M5"] = [c for c in answers["M5"] if c != LEFT_OUT_WORRY]
    answers["M1"] = [
        {"name": medicine_name(base, n), "feeling": feeling}
        for n, (base, feeling) in enumerate(zip(MEDICINES, FEELINGS, strict=False), start=1)
    ]
    answers["M4"] = 9
    answers["R1"] = 0  # also fires "Hard to voice doubts" where flags allow
    answers["T2"] = realistic_text(SENTENCES["T2"])
    answers["H1"] = realistic_text(SENTENCES["H1"])
    answers["F2"] = {"choice": "yes", "text": realistic_text(SENTENCES["F2"])}
    answers["P1"] = "chose_to_skip"
    answers["S1"] = "nearly_every_day"
    # Version 2 items that fire flags, where this questionnaire has them.
    for item_id, choice in (("P3", "much_worse"), ("R4", "yes_talk"), ("R5", "control_me")):
        if item_id in q.items and q.items[item_id].choice(choice):
            answers[item_id] = choice
    return answers


@dataclass(frozen=True)
class StoredVisits:
    ref: str
    visit_id: int
    previous_id: int


def _appointment_today(moment: datetime) -> datetime:
    """About half an hour from now, but always on today's date (the board's day)."""
    slot = (moment + timedelta(minutes=30)).replace(second=0, microsecond=0)
    if slot.date() != moment.date():
        slot = datetime.combine(moment.date(), time(23, 59))
    return slot


def store_submitted(
    db,
    *,
    ref: str,
    answers: dict,
    appointment: datetime,
    sent: datetime,
    psychiatrist_id: int | None = None,
    created_by: int | None = None,
    language: str = "en",
    q=None,
    safety_history: tuple[str, ...] = (),
    measures: tuple[str, ...] = (),
) -> int:
    """One visit invited, answered section by section and sent, like the patient pages."""
    q = q or questionnaire.default()
    started = sent - timedelta(minutes=MINUTES_TAKEN)
    visit_id = visits.create(
        db,
        patient_ref=ref,
        appointment_at=appointment,
        psychiatrist_id=psychiatrist_id,
        suggested_language="",
        extra_days=0,
        created_by=created_by,
        now=started - timedelta(minutes=10),
        measures=measures,
    ).visit_id
    assert visits.start(db, visit_id, language=language, version=q.version, now=started)
    gap = timedelta(minutes=MINUTES_TAKEN) / (len(q.sections) + 1 + len(safety_history))
    last = len(q.sections)
    for earlier, value in enumerate(safety_history, start=1):
        # The safety section saved before, with other answers: the history keeps each.
        assert visits.save_step(
            db,
            visit_id,
            {"S1": value or None},
            step=last,
            next_step=last + 1,
            now=started + gap * earlier,
            language=language,
        )
    started += gap * len(safety_history)
    for number, section in enumerate(q.sections, start=1):
        values = {item.id: answers.get(item.id) for item in section.items}
        assert visits.save_step(
            db,
            visit_id,
            values,
            step=number,
            next_step=number + 1,
            now=started + gap * number,
            language=language,
        )
    assert visits.submit(db, visit_id, set(), sent)
    return visit_id


def store_maximal_visit(
    db,
    ref: str,
    *,
    now: datetime | None = None,
    psychiatrist_id: int | None = None,
    created_by: int | None = None,
    acknowledged_by: int | None = None,
    answered_before: timedelta = timedelta(0),
) -> StoredVisits:
    """The previous visit (four weeks ago) and today's maximal one, for ``ref``.

    With ``acknowledged_by`` (a user id) the safety alert is acknowledged, as the printed
    fullest page shows it; without it the alert stays open on the board. With
    ``answered_before`` today's visit was answered that long before now (the evening
    before, say), so the page's times carry their other day.
    """
    moment = (now or datetime.now()).replace(microsecond=0)
    q = questionnaire.default()
    appointment = _appointment_today(moment)
    for n, value in enumerate(reversed(EARLIER_TOTALS), start=1):
        weeks = PREVIOUS_WEEKS * (len(EARLIER_TOTALS) + 2 - n)
        measured = {i: value for i in q.items if q.items[i].instrument}
        store_submitted(
            db,
            ref=ref,
            answers={**PREVIOUS_ANSWERS, **measured},
            appointment=appointment - timedelta(weeks=weeks),
            sent=moment - timedelta(weeks=weeks),
            psychiatrist_id=psychiatrist_id,
            created_by=created_by,
            q=q,
            measures=MEASURES,
        )
    earlier = moment - timedelta(weeks=PREVIOUS_WEEKS)
    measured = {i: "several_days" for i in q.items if q.items[i].instrument}
    previous_id = store_submitted(
        db,
        ref=ref,
        answers={**PREVIOUS_ANSWERS, **measured},
        appointment=appointment - timedelta(weeks=PREVIOUS_WEEKS),
        sent=earlier,
        psychiatrist_id=psychiatrist_id,
        created_by=created_by,
        q=q,
        measures=MEASURES,
    )
    visit_id = store_submitted(
        db,
        ref=ref,
        answers=maximal_answers(q),
        appointment=appointment,
        sent=moment - timedelta(minutes=1) - answered_before,
        psychiatrist_id=psychiatrist_id,
        created_by=created_by,
        q=q,
        safety_history=SAFETY_HISTORY,
        measures=MEASURES,
    )
    if acknowledged_by is not None:
        assert storage.acknowledge_alert(db, visit_id, acknowledged_by, moment)
    return StoredVisits(ref=ref, visit_id=visit_id, previous_id=previous_id)

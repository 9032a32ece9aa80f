"""A patient answering after the appointment's day (the clinic's extra days): no page
promises that the psychiatrist reads the answers "before your visit", a day already
gone (found on a walk: "before your visit on Tuesday, November 24, 2026", read on
December 7), and no page says the same thing twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape

from patientapp.domain import visits
from patientapp.web.context import get_db
from tests.conftest import FULL_ANSWERS, Patient

BEFORE = {"en": "before your visit", "es": "antes de su consulta", "ar": "قبل موعدك"}


def invite(app, clock, days_ago: int, language: str):
    with app.app_context():
        return visits.create(
            get_db(),
            patient_ref="LATE-1",
            appointment_at=(clock() - timedelta(days=days_ago)).replace(hour=14),
            psychiatrist_id=None,
            suggested_language=language,
            extra_days=14,
            created_by=None,
            now=clock() - timedelta(days=days_ago + 1),
        )


def said(app, code: str, msgid: str) -> str:
    with app.test_request_context(), force_locale(code):
        return str(escape(gettext(msgid)))


def walk(app, invitation, worrying: bool) -> dict[str, str]:
    """Welcome, the safety screen (after a worrying answer), thanks: each page's HTML."""
    patient = Patient(app.test_client())
    pages = {"welcome": patient.open(invitation.token).get_data(as_text=True)}
    patient.post("/welcome", {})
    for number in range(1, 11):
        answers = dict(FULL_ANSWERS.get(number, {}))
        if number == 10 and worrying:
            answers = {"S1": "several_days"}
        page = patient.post(f"/step/{number}", {"action": "next", **answers})
    if worrying:
        pages["safety"] = page.get_data(as_text=True)
        assert "/safety" in page.request.path, page.request.path
    pages["thanks"] = patient.post("/review", {"action": "submit"}).get_data(as_text=True)
    return pages


@pytest.mark.parametrize("code", ["en", "es", "ar"])
def test_after_the_day_no_page_says_before_your_visit(app, clock, code):
    pages = walk(app, invite(app, clock, days_ago=2, language=code), worrying=True)
    heading = said(app, code, "Before your visit")  # the form's name, kept as its title
    for name, html in pages.items():
        assert BEFORE[code] not in html.replace(heading, ""), (name, code)
    assert (
        said(
            app,
            code,
            "Your psychiatrist will read your answers. They help you both "
            "talk about what matters most to you.",
        )
        in pages["welcome"]
    )
    assert said(app, code, "Your answers were sent to your psychiatrist.") in pages["thanks"]
    # The notice on the safety screen says the psychiatrist sees it: once, not twice.
    told = said(
        app,
        code,
        "Staff at the clinic can see your answer now, and your psychiatrist will see it too.",
    )
    assert told in pages["safety"]
    assert said(app, code, "Your psychiatrist will also see your answer.") not in pages["safety"]


def test_before_the_day_each_page_says_it_once(app, clock):
    """Answering the day before (the e-mailed link): "before your visit" is true, and
    the safety screen and thanks page say it once each, not twice as they did."""
    invitation = invite(app, clock, days_ago=-1, language="en")
    pages = walk(app, invitation, worrying=True)
    assert "before your visit on Thursday, November 26, 2026" in pages["welcome"]
    assert pages["safety"].count("before your visit") == 1
    assert pages["thanks"].count("before your visit") == 1

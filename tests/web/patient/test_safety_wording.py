"""The safety question tells the truth before the answer (CONTENT.md version 3, S1).

A worrying S1 answer raises an alert on the front desk's board at once, so no page may
say that nobody sees the answers until the visit: the welcome says who reads them and
that this one question alerts the front desk, and the S1 screen says so above its choices.
"""

from __future__ import annotations

import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape

from patientapp.questionnaire import model as questionnaire
from tests.conftest import Patient, make_invitation

WELCOME_TRUTH = (
    "Your psychiatrist reads your answers before your visit. One question is about your "
    "safety. If you answer it with anything other than “Not at all”, the front desk is "
    "told right away so someone can check on you."
)
# What the welcome used to say, and must never say again in any language (a catalog
# without the new sentence would fall back to English, so English is checked too).
OLD_CLAIMS = (
    "No one is watching your answers right now",
    "Your answers are read before your visit, not live.",
    "not live",
)


def s1_help() -> str:
    return questionnaire.default().items["S1"].help


def in_language(app, code: str, msgid: str) -> str:
    """The catalog's translation of msgid, as the app renders it (HTML-escaped)."""
    with app.test_request_context(), force_locale(code):
        return str(escape(gettext(msgid)))


def walk_to_safety(app, code: str) -> tuple[str, str]:
    """A patient invited in this language: the welcome's HTML, then the S1 screen's."""
    invitation = make_invitation(app, language=code)
    patient = Patient(app.test_client())
    welcome = patient.open(invitation.token).get_data(as_text=True)
    assert f'<html lang="{code}"' in welcome
    patient.post("/welcome", {})
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    step = patient.client.get("/step/10")
    assert step.status_code == 200
    return welcome, step.get_data(as_text=True)


def test_the_s1_help_says_the_front_desk_is_told():
    help_text = s1_help()
    assert "“Not at all”" in help_text
    assert "front desk is told right away" in help_text
    assert "before your visit today" not in help_text


@pytest.mark.parametrize("code", ["en", "es", "ar"])
def test_the_welcome_says_the_safety_question_alerts_the_front_desk(app, code):
    welcome, _ = walk_to_safety(app, code)
    truth = in_language(app, code, WELCOME_TRUTH)
    if code != "en":
        assert truth != str(escape(WELCOME_TRUTH)), f"{code} catalog lacks the sentence"
    assert truth in welcome
    assert in_language(app, code, "Who reads your answers") in welcome
    for claim in OLD_CLAIMS:
        assert claim not in welcome
        assert in_language(app, code, claim) not in welcome


@pytest.mark.parametrize("code", ["en", "es", "ar"])
def test_the_s1_screen_says_it_above_the_choices(app, code):
    _, html = walk_to_safety(app, code)
    alert = in_language(app, code, s1_help())
    if code != "en":
        assert alert != str(escape(s1_help())), f"{code} catalog lacks the S1 help"
    first_choice = html.find('name="S1"')
    assert first_choice != -1, "no S1 choice on step 8"
    first_choice = html.rfind("<input", 0, first_choice)
    assert html.find(alert) != -1, "the S1 help is not on the screen"
    assert html.find(alert) < first_choice
    # The S1 choice for "Not at all" that the sentence names is the catalog's own label.
    assert in_language(app, code, "Not at all") in alert


def test_the_s1_screen_from_its_kept_skeleton_says_it_too(app):
    """The second GET of a screen is filled from a kept skeleton: the same sentence,
    in the same place."""
    invitation = make_invitation(app, language="es")
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    first = patient.client.get("/step/10").get_data(as_text=True)
    again = patient.client.get("/step/10").get_data(as_text=True)
    alert = in_language(app, "es", s1_help())
    for html in (first, again):
        assert -1 < html.find(alert) < html.find('name="S1"')

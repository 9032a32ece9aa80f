"""Crisis phone numbers typed in Settings are tap-to-call links wherever patients see
them, kept left to right in Arabic, and never a way to put markup on a patient's page."""

from __future__ import annotations

import re

import pytest

from patientapp.db import storage
from patientapp.web.context import tel_links
from tests.conftest import Patient, make_invitation

LINK = re.compile(r'<a class="tel" href="(tel:[^"]*)" dir="ltr">([^<]*)</a>')


def links(html: str) -> list[tuple[str, str]]:
    return LINK.findall(html)


def crisis_html(html: str) -> str:
    return "".join(part.split("</p>")[0] for part in html.split('class="crisis')[1:])


def welcome(app, language: str = "") -> str:
    invitation = make_invitation(app, language=language)
    return Patient(app.test_client()).open(invitation.token).get_data(as_text=True)


def at_safety(app):
    """A patient on the screens after the safety question, answered "several days"."""
    patient = Patient(app.test_client())
    patient.start(make_invitation(app).token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    return patient, patient.post("/step/10", {"action": "next", "S1": "several_days"})


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("988", [("tel:988", "988")]),
        ("Call 988 or 911 24/7", [("tel:988", "988"), ("tel:911", "911")]),
        ("(555) 010-0199", [("tel:5550100199", "(555) 010-0199")]),
        ("+44 20 7946 0958", [("tel:+442079460958", "+44 20 7946 0958")]),
        ("Crisis line: 555.010.0100.", [("tel:5550100100", "555.010.0100")]),
        ("(call 988)", [("tel:988", "988")]),
        ("Room 2, desk 12, open 24/7, since 2024/05/01", []),
        ("Ask at the front desk", []),
    ],
)
def test_phone_like_runs_are_linked_and_nothing_else(typed, expected):
    html = str(tel_links(typed))
    assert links(html) == expected
    assert re.sub(r"<[^>]+>", "", html) == typed.replace("&", "&amp;")  # the words stay


def test_markup_typed_in_settings_is_escaped_and_its_number_still_linked():
    html = str(tel_links('<b>911</b> <script>alert("x")</script>'))
    assert "<b>" not in html and "<script>" not in html
    assert html.startswith("&lt;b&gt;") and "&lt;script&gt;" in html
    assert links(html) == [("tel:911", "911")]


@pytest.mark.parametrize("page", ["welcome", "safety", "thanks"])
def test_patient_pages_link_the_settings_numbers(app, db, page):
    storage.save_settings(db, {"crisis_phone_numbers": "<b>911</b>, crisis line 988 (24/7)"})
    if page == "welcome":
        html = welcome(app)
    else:
        patient, safety = at_safety(app)
        html = safety.get_data(as_text=True)
        assert "Thank you for telling us" in html  # templates/patient/safety.html
        if page == "thanks":
            html = patient.post("/review", {"action": "submit"}).get_data(as_text=True)
            assert "Your answers were sent" in html
    block = crisis_html(html)
    assert links(block) == [("tel:911", "911"), ("tel:988", "988")]
    assert "&lt;b&gt;" in block and "<b>" not in block
    assert 'href="tel:24' not in html and 'href="tel:7"' not in html


def test_the_clinics_own_crisis_text_links_its_numbers(app, db):
    own = "Call the Riverside line at (555) 010-0199, or 911."
    storage.save_settings(db, {"crisis_texts": {"en": own}, "crisis_phone_numbers": "988"})
    block = crisis_html(welcome(app, "en"))
    assert links(block) == [("tel:5550100199", "(555) 010-0199"), ("tel:911", "911")]
    assert block.startswith('" dir="auto">Call the Riverside line at <a')


def test_arabic_page_keeps_the_number_left_to_right(app, db):
    if "ar" not in app.config["OFFERED_LANGUAGES"]:
        pytest.skip("needs the Arabic catalog")
    storage.save_settings(db, {"crisis_phone_numbers": "+44 20 7946 0958"})
    html = welcome(app, "ar")
    assert '<html lang="ar" dir="rtl"' in html
    assert links(crisis_html(html)) == [("tel:+442079460958", "+44 20 7946 0958")]

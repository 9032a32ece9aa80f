"""The crisis text is set per language; a language without one gets its own default."""

from __future__ import annotations

import html as html_lib

import pytest

from patientapp.db import storage
from tests.conftest import Patient, create_user, csrf_from, login, make_invitation

ENGLISH = "Call the Riverside crisis line: 555-0100"
SPANISH = "Llame a la línea de crisis de Riverside: 555-0100"
SPANISH_DEFAULT = "o cree que podría hacerse daño"  # in both default texts, by day and closed
ENGLISH_DEFAULT = "call your local emergency number"


def linked(text: str) -> str:
    """The text as shown: its phone number a tap-to-call link
    (tests/web/patient/test_tap_to_call.py)."""
    return text.replace("555-0100", '<a class="tel" href="tel:5550100" dir="ltr">555-0100</a>')


@pytest.fixture(autouse=True)
def _needs_spanish(app):
    if "es" not in app.config["OFFERED_LANGUAGES"]:
        pytest.skip("needs the Spanish catalog")


def welcome(app, language: str) -> str:
    invitation = make_invitation(app, language=language)
    page = Patient(app.test_client()).open(invitation.token)
    return html_lib.unescape(page.get_data(as_text=True))


def crisis_block(page: str) -> str:
    return "".join(part.split("</p>")[0] for part in page.split('class="crisis')[1:])


def test_spanish_patient_sees_the_spanish_text(app, db):
    storage.save_settings(db, {"crisis_texts": {"en": ENGLISH, "es": SPANISH}})
    page = welcome(app, "es")
    assert f'<p class="crisis" dir="auto">{linked(SPANISH)}</p>' in page
    assert ENGLISH not in page and SPANISH_DEFAULT not in page
    assert f'<p class="crisis" dir="auto">{linked(ENGLISH)}</p>' in welcome(app, "en")


def test_spanish_without_its_own_text_sees_the_spanish_default_and_numbers(app, db):
    storage.save_settings(
        db, {"crisis_texts": {"en": ENGLISH}, "crisis_phone_numbers": "Riverside 555-0100"}
    )
    block = crisis_block(welcome(app, "es"))
    assert SPANISH_DEFAULT in block
    # The numbers' names were typed in the clinic's language (English): a screen reader
    # reading the Spanish page must say "Riverside" in English, so the line says so.
    assert 'crisis-numbers" dir="auto" lang="en">' + linked("Riverside 555-0100") in block
    assert ENGLISH not in block and ENGLISH_DEFAULT not in block


@pytest.mark.parametrize(
    ("language", "numbers", "tag"),
    [
        ("ar", "Crisis line 555-0100", ' lang="en"'),
        ("zh_Hans", "Crisis line 555-0100", ' lang="en"'),
        ("ar", "555-0100 / 555-0100", ""),  # digits alone: read in the patient's language
        ("en", "Crisis line 555-0100", ""),  # the page's own language: nothing to say
    ],
)
def test_the_crisis_numbers_carry_the_language_they_were_typed_in(app, db, language, numbers, tag):
    """From a WCAG walk: "Crisis line 988" on an Arabic page was read with an Arabic voice."""
    storage.save_settings(db, {"crisis_phone_numbers": numbers})
    block = crisis_block(welcome(app, language))
    assert f'crisis-numbers" dir="auto"{tag}>' + linked(numbers) in block


def test_default_without_numbers_shows_the_default_alone(app):
    block = crisis_block(welcome(app, "es"))
    assert SPANISH_DEFAULT in block and "crisis-numbers" not in block


def test_the_one_text_stored_before_is_the_default_languages(app, db):
    storage.save_settings(db, {"crisis_text": ENGLISH})
    assert linked(ENGLISH) in crisis_block(welcome(app, "en"))
    spanish = crisis_block(welcome(app, "es"))
    assert ENGLISH not in spanish and SPANISH_DEFAULT in spanish


def test_safety_screen_uses_the_patients_language(app, db):
    storage.save_settings(db, {"crisis_texts": {"en": ENGLISH}})
    invitation = make_invitation(app, language="es")
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    page = patient.post("/step/10", {"action": "next", "S1": "several_days"})
    block = crisis_block(html_lib.unescape(page.get_data(as_text=True)))
    assert SPANISH_DEFAULT in block and ENGLISH not in block


def test_settings_page_sets_each_language_and_names_those_on_the_default(app, client, db):
    create_user(app, "boss@example.org", "admin")
    login(client, "boss@example.org")
    page = client.get("/staff/admin/settings").get_data(as_text=True)
    assert 'name="crisis_text_es"' in page and 'dir="auto"' in page
    assert "Still showing the general message: English, Español" in page
    response = client.post(
        "/staff/admin/settings",
        data={
            "csrf_token": csrf_from(page),
            "crisis_text_es": SPANISH,
            "crisis_phone_numbers": "555-0100",
            "languages": ["en", "es"],
            "invite_extra_days": "0",
            "patient_idle_minutes": "15",
            "retention_days": "365",
            "escalate_after_minutes": "5",
        },
    )
    assert response.status_code == 302
    settings = storage.get_settings(db)
    assert settings["crisis_texts"] == {"es": SPANISH}
    assert settings["crisis_phone_numbers"] == "555-0100"
    page = html_lib.unescape(client.get("/staff/admin/settings").get_data(as_text=True))
    assert "Still showing the general message: English." in page
    assert SPANISH in page

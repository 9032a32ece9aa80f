"""Bad input: a clear message on the bad field, everything else on the screen kept."""

from __future__ import annotations

import pytest

from patientapp import storage

STEP_2_GOOD = {"M1-0-name": "Lamotrigine", "M1-0-feeling": "helping", "M2": "mixed",
               "M3": ["helper"], "M4": "7"}


def post_step(patient, invitation, number, data):
    patient.start(invitation.token)
    for earlier in range(1, number):
        patient.post(f"/step/{earlier}", {"action": "next"})
    return patient.post(f"/step/{number}", {"action": "next", **data})


@pytest.mark.parametrize("bad, message", [
    ({"M5": ["side_effects", "none"]}, "can't be picked together with other answers"),
    ({"M5": ["side_effects", "made_up"]}, "Please pick one of the choices shown."),
    ({"M2": "fantastic"}, "Please pick one of the choices shown."),
    ({"M4": "11"}, "Please pick one of the choices shown."),
    ({"M4": "seven"}, "Please pick one of the choices shown."),
    ({"M1-1-feeling": "mixed"}, "Please write the medicine's name"),
    ({"M1-1-name": "x" * 61}, "Please keep this to 60 characters or fewer."),
])
def test_step_two_errors_keep_everything_else(app, patient, invitation, bad, message):
    page = post_step(patient, invitation, 2, {**STEP_2_GOOD, **bad})
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert message in html
    assert "Everything else you entered is still here" in html
    assert 'value="Lamotrigine"' in html
    assert '<input checked id="M2-1" name="M2" type="radio" value="mixed">' in html or \
        'M2' in bad
    assert 'value="helper"' in html and "checked" in html
    assert "Step 2 of 8" in html
    db = storage.connect(app.config["DATABASE"])
    assert storage.answers_for(db, invitation.visit_id)[0] == {}


def test_too_many_feelings(patient, invitation):
    page = post_step(patient, invitation, 1, {"T1": ["calm", "sad", "tired", "numb"],
                                              "T2": "Keep this text"})
    html = page.get_data(as_text=True)
    assert "Please pick no more than 3." in html
    assert "Keep this text</textarea>" in html


def test_too_long_text(patient, invitation):
    page = post_step(patient, invitation, 1, {"T1": ["calm"], "T2": "y" * 301})
    html = page.get_data(as_text=True)
    assert "Please keep this to 300 characters or fewer." in html
    assert 'value="calm"' in html
    assert "y" * 301 in html  # kept, so the person can trim it rather than retype


def test_text_limit_is_visible(patient, invitation):
    patient.start(invitation.token)
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert "Up to 300 characters." in html and 'maxlength="300"' in html


def test_fixed_choices_after_error_are_still_checked(patient, invitation):
    page = post_step(patient, invitation, 4, {"F1": ["against"], "F2": "yes",
                                              "F2_text": "z" * 400, "F3": ["pressured"]})
    html = page.get_data(as_text=True)
    assert '<input checked id="F1-1" name="F1" type="checkbox" value="against">' in html
    assert '<input checked id="F3-3" name="F3" type="checkbox" value="pressured">' in html
    assert '<input checked id="F2-0" name="F2" type="radio" value="yes">' in html

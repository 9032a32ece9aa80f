"""Bad input: a clear message on the bad field, everything else on the screen kept."""

from __future__ import annotations

from contextlib import closing

import pytest

from patientapp.db import storage
from patientapp.questionnaire import model as questionnaire
from tests.conftest import checked, csrf_from, input_value, progress_of

STEP_2_GOOD = {
    "M1-0-name": "Lamotrigine",
    "M1-0-feeling": "helping",
    "M2": "mixed",
    "M3": ["helper"],
    "M4": "7",
}


def in_choice_order(item_id: str, picked: list[str]) -> list[str]:
    """The valid ones of picked, in the order the page lists them."""
    return [c for c in questionnaire.default().items[item_id].choice_ids if c in picked]


def post_step(patient, invitation, number, data):
    patient.start(invitation.token)
    for earlier in range(1, number):
        patient.post(f"/step/{earlier}", {"action": "next"})
    return patient.post(f"/step/{number}", {"action": "next", **data})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"M5": ["side_effects", "none"]}, "can't be picked together with other answers"),
        ({"M5": ["side_effects", "made_up"]}, "Please pick one of the choices shown."),
        ({"M2": "fantastic"}, "Please pick one of the choices shown."),
        ({"M4": "11"}, "Please pick one of the choices shown."),
        ({"M4": "seven"}, "Please pick one of the choices shown."),
        ({"M1-1-feeling": "mixed"}, "Please write the medicine's name"),
        ({"M1-1-name": "x" * 61}, "Please keep this to 60 characters or fewer."),
    ],
)
def test_step_two_errors_keep_everything_else(app, patient, invitation, bad, message):
    page = post_step(patient, invitation, 2, {**STEP_2_GOOD, **bad})
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert message in html
    assert "Everything else you entered is still here" in html
    # Every valid choice comes back ticked; an invalid one leaves its question unticked.
    assert input_value(html, "M1-0-name") == "Lamotrigine"
    assert checked(html, "M1-0-feeling") == ["helping"]
    assert checked(html, "M1-1-feeling") == ([bad["M1-1-feeling"]] if "M1-1-feeling" in bad else [])
    assert checked(html, "M2") == ([] if "M2" in bad else ["mixed"])
    assert checked(html, "M3") == ["helper"]
    assert checked(html, "M4") == ([] if "M4" in bad else ["7"])
    assert checked(html, "M5") == in_choice_order("M5", bad.get("M5", []))
    assert progress_of("M0") in html  # the whole step posted: where it begins
    with closing(storage.connect(app.config["DATABASE"])) as db:
        assert storage.answers_for(db, invitation.visit_id)[0] == {}


def test_too_many_feelings(patient, invitation):
    page = post_step(
        patient, invitation, 1, {"T1": ["calm", "sad", "tired", "numb"], "T2": "Keep this text"}
    )
    html = page.get_data(as_text=True)
    assert "Please pick no more than 3." in html
    assert checked(html, "T1") == in_choice_order("T1", ["calm", "sad", "tired", "numb"])
    assert "Keep this text</textarea>" in html


def test_too_long_text(patient, invitation):
    page = post_step(patient, invitation, 1, {"T1": ["calm"], "T2": "y" * 301})
    html = page.get_data(as_text=True)
    assert "Please keep this to 300 characters or fewer." in html
    assert checked(html, "T1") == ["calm"]
    assert "y" * 301 in html  # kept, so the person can trim it rather than retype


def test_text_limit_is_visible(patient, invitation):
    patient.start(invitation.token)
    html = patient.client.get("/step/1").get_data(as_text=True)
    assert "Up to 300 characters." in html and 'maxlength="300"' in html


def test_fixed_choices_after_error_are_still_checked(patient, invitation):
    page = post_step(
        patient,
        invitation,
        4,
        {"F1": ["against"], "F2": "yes", "F2_text": "z" * 400, "F3": ["pressured"]},
    )
    html = page.get_data(as_text=True)
    assert '<input checked id="F1-1" name="F1" type="checkbox" value="against">' in html
    assert '<input checked id="F3-3" name="F3" type="checkbox" value="pressured">' in html
    assert '<input checked id="F2-0" name="F2" type="radio" value="yes">' in html


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/step/2", {"M1-999-name": "x", "M1-999-feeling": "mixed"}),
        ("/step/2", {"M1-0-name": ["a", "b"], "M1-0-feeling": ["mixed", "helping"]}),
        ("/step/2", {"M1--1-name": "x", "M1-abc-name": "y"}),
        ("/step/2", {**{f"M1-{i}-name": f"med{i}" for i in range(20)}}),
        ("/step/2", {"M4": ["1", "2"]}),
        ("/step/1", {"T2": ["a", "b"], "T1": "calm"}),
        ("/step/1", {"T2": "\x00\x01 bell \x07"}),
        ("/step/1", {"action": "weird"}),
        ("/step/1", {"lang": "xx"}),
        ("/step/4", {"F2": "maybe", "F2_text": "x"}),
        ("/step/11", {}),
        ("/review", {"action": "edit-99"}),
        ("/review", {"action": "edit-x", "in_person": ["ZZ", "S1"]}),
        ("/language", {"lang": "ar", "next": "javascript:alert(1)"}),
        ("/start", {"code": "x" * 5000}),
    ],
)
def test_malformed_posts_never_fail_or_lose_answers(app, patient, invitation, url, data):
    patient.start(invitation.token)
    patient.post("/step/1", {"action": "next", "T2": "Keep me"})
    for number in range(2, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    page = patient.client.get("/step/1")
    response = patient.client.post(
        url, data={"csrf_token": csrf_from(page.get_data(as_text=True)), "action": "next", **data}
    )
    assert response.status_code < 500
    with closing(storage.connect(app.config["DATABASE"])) as db:
        answers = storage.answers_for(db, invitation.visit_id)[0]
    if url != "/step/1":
        assert answers["T2"] == "Keep me"
    assert len(answers.get("M1", [])) <= 6


def test_a_line_break_counts_once_as_the_text_box_counts_it(app, patient, invitation):
    """From a patient walk: ten lines in the 300-character box (299 characters as the
    browser counts them, each line break one) were refused as too long, because the
    browser sends a line break as CR LF and the server counted two."""
    lines = ["x" * 28] * 10  # 280 characters and 9 line breaks between them
    typed = "\r\n".join(lines) + "\r\n" + "y" * 10  # and one more: 300 as the browser counts
    assert len(typed.replace("\r\n", "\n")) == 300 and len(typed) == 310
    page = post_step(patient, invitation, 1, {"T1": ["worried"], "T2": typed})
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    assert "Please keep this to 300 characters or fewer." not in page.get_data(as_text=True)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        answers, _held = storage.answers_for(db, invitation.visit_id)
    assert answers["T2"] == typed.replace("\r\n", "\n")  # stored with one kind of break
    refused = post_step(patient, invitation, 1, {"T1": ["worried"], "T2": typed + "z"})
    assert refused.status_code == 422  # 301 is still one too many

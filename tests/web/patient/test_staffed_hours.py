"""Staffed hours: outside them the patient is told the truth about the safety alert.

An admin sets the hours on the Settings page. A patient who answers at 23:00 reads on the
welcome, above the safety question and on the safety screen that the clinic is closed,
when staff will see a worrying answer (the next opening's day and time) and to use the
crisis text now; the alert is raised as always and waits on the board for the morning.
During staffed hours, or with no hours set, every page says what it always said.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import datetime
from html.parser import HTMLParser

import itsdangerous.timed
import pytest
from flask_babel import force_locale, format_datetime, format_time, gettext

from patientapp.cli.i18n import extract_template
from patientapp.db import storage
from patientapp.web.context import get_db
from tests.conftest import Patient, create_user, csrf_from, input_value, login, make_invitation

SETTINGS = "/staff/admin/settings"
# Wednesday 25 November 2026, 23:00: the conftest clock's day, after closing time.
WEDNESDAY_NIGHT = datetime(2026, 11, 25, 23, 0)
THURSDAY_OPENING = datetime(2026, 11, 26, 8, 0)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EIGHT_TO_FIVE = {
    f"staffed_{day}_{end}": time
    for day in WEEKDAYS[:5]
    for end, time in (("from", "08:00"), ("until", "17:00"))
}

WELCOME_STAFFED = (
    "If you answer it with anything other than “Not at all”, the front desk is told right "
    "away so someone can check on you."
)
STEP_STAFFED = "the front desk is told right away so someone can check on you."
SAFETY_STAFFED = "The front desk has been told"
CLOSED = "The clinic is closed right now."
NOBODY = "Nobody is at the front desk right now"
CRISIS_DEFAULT = "call your local emergency number"  # the translated default crisis text
# The default crisis text's words by day, which at night would send a patient to an empty
# front desk.
CRISIS_DAY_ONLY = "tell the front desk right away"
TOKEN = re.compile(r'(name="csrf_token" type="hidden" value=")[^"]+"')


class _SettingsForm(HTMLParser):
    """What a browser would send for the form as shown: every box's value, the ticked
    boxes and the text areas' words."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "textarea" and name:
            self._textarea = name
            self.values.setdefault(name, [""])
        elif tag == "input" and name and attrs.get("type") not in ("submit", "button"):
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.values.setdefault(name, []).append(attrs.get("value") or "")

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea][-1] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None


def shown_values(page: str) -> dict[str, list[str]]:
    parser = _SettingsForm()
    parser.feed(page)
    return parser.values


def save_settings(admin, changes: dict, headers: dict | None = None):
    """Open Settings, change some boxes, keep the rest as shown, and save."""
    page = admin.get(SETTINGS, headers=headers).get_data(as_text=True)
    data = {**shown_values(page), **changes, "csrf_token": csrf_from(page)}
    return admin.post(SETTINGS, data=data, headers=headers)


def stored(app) -> dict:
    with app.app_context():
        return storage.get_settings(get_db())


def settings_audit(app) -> list[dict]:
    with app.app_context():
        return storage.audit_entries(get_db(), action="settings_changed")


@pytest.fixture
def admin(app):
    create_user(app, "boss@example.org", "admin")
    client = app.test_client()
    assert login(client, "boss@example.org").status_code == 302
    return client


def text(response) -> str:
    return html_lib.unescape(response.get_data(as_text=True))


def without_token(page: str) -> str:
    """A page with its CSRF token set aside (each request's own, signed to the second)."""
    return TOKEN.sub(r'\1"', page)


def when_opens(app, moment: datetime, code: str = "en") -> tuple[str, str]:
    """The day and time the pages name, as Flask-Babel formats them in that language."""
    with app.test_request_context(), force_locale(code):
        return format_datetime(moment, "EEEE"), format_time(moment, "short")


def reach_safety_question(patient: Patient, token: str) -> str:
    """From the link to the safety question (step 8); returns the welcome's text."""
    welcome = text(patient.open(token))
    patient.post("/welcome", {})
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    return welcome


def before_the_choices(page: str, needle: str) -> bool:
    first_choice = page.find('name="S1"')
    return -1 < page.find(needle) < first_choice


# --- a patient at night --------------------------------------------------------------------


def test_a_patient_at_night_is_told_when_a_worrying_answer_will_be_seen(
    app, admin, clock, monkeypatch
):
    assert save_settings(admin, EIGHT_TO_FIVE).status_code == 302
    assert stored(app)["staffed_hours"] == [["08:00", "17:00"]] * 5 + [None, None]
    assert settings_audit(app)[0]["detail"] == "staffed_hours"

    invitation = make_invitation(app, patient_ref="N-23", when=datetime(2026, 11, 26, 10, 0))
    clock.moment = WEDNESDAY_NIGHT
    patient = Patient(app.test_client())
    day, time = when_opens(app, THURSDAY_OPENING)
    assert (day, time) == ("Thursday", "8:00\u202fAM")

    welcome = reach_safety_question(patient, invitation.token)
    assert CLOSED in welcome
    assert f"staff will see it when the clinic opens on {day} at {time}." in welcome
    assert "please use the crisis help below" in welcome
    assert CRISIS_DEFAULT in welcome
    assert WELCOME_STAFFED not in welcome
    assert CRISIS_DAY_ONLY not in welcome

    step = text(patient.client.get("/step/10"))
    assert before_the_choices(step, f"when the clinic opens on {day} at {time}")
    assert before_the_choices(step, CRISIS_DEFAULT)
    assert STEP_STAFFED not in step
    assert CRISIS_DAY_ONLY not in step
    # The second look comes from the kept page skeleton: the same words. Only the CSRF
    # token may differ: it is signed with the real clock's second, which may turn between
    # the two looks (it does here, as it once did by chance).
    real_time = itsdangerous.timed.time.time
    with monkeypatch.context() as later:
        later.setattr(itsdangerous.timed.time, "time", lambda: real_time() + 1)
        assert without_token(text(patient.client.get("/step/10"))) == without_token(step)

    safety = text(patient.post("/step/10", {"action": "next", "S1": "several_days"}))
    assert "Thank you for telling us" in safety
    assert NOBODY in safety
    assert f"Staff will see your answer when the clinic opens on {day} at {time}." in safety
    assert "If you need help now, please do not wait: use the crisis help below." in safety
    assert safety.count(CRISIS_DEFAULT) == 1  # the crisis text alone names it
    assert CRISIS_DEFAULT in safety
    assert SAFETY_STAFFED not in safety
    assert "help is here today" not in safety
    assert CRISIS_DAY_ONLY not in safety

    # The alert is raised at once, as always, and waits for the morning.
    clock.moment = datetime(2026, 11, 26, 8, 5)
    create_user(app, "desk@example.org", "frontdesk")
    desk = app.test_client()
    assert login(desk, "desk@example.org").status_code == 302
    board = desk.get("/staff/").get_data(as_text=True)
    alert = board[board.index('id="alert-list"') : board.index("</section>")]
    assert f'data-visit="{invitation.visit_id}"' in alert
    assert "<strong>N-23</strong>" in alert
    assert "Not acknowledged for 5 minutes: no on-call e-mail is set up" in board


def test_the_welcome_at_night_names_the_opening_in_the_patients_language(app, admin, clock):
    save_settings(admin, EIGHT_TO_FIVE)
    invitation = make_invitation(app, language="es")
    clock.moment = WEDNESDAY_NIGHT
    welcome = text(Patient(app.test_client()).open(invitation.token))
    day, time = when_opens(app, THURSDAY_OPENING, "es")
    assert (day, time) == ("jueves", "8:00")
    with app.test_request_context(), force_locale("es"):
        sentence = gettext(
            "One question is about your safety. If you answer it with anything other than "
            "“Not at all”, staff will see it when the clinic opens on %(day)s at %(time)s. "
            "If you need help before then, please use the crisis help below.",
            day=day,
            time=time,
        )
    assert "staff will see it" not in sentence  # the Spanish catalog has it
    assert " ".join(sentence.split()) in welcome


def test_closed_on_the_weekend_names_monday(app, admin, clock):
    save_settings(admin, EIGHT_TO_FIVE)
    invitation = make_invitation(app, when=datetime(2026, 11, 30, 10, 0))
    clock.moment = datetime(2026, 11, 28, 11, 0)  # Saturday late morning
    welcome = text(Patient(app.test_client()).open(invitation.token))
    assert "when the clinic opens on Monday at 8:00\u202fAM." in welcome


# --- during staffed hours, and with no hours set, nothing changes --------------------------


@pytest.mark.parametrize(
    ("hours", "moment"),
    [
        (EIGHT_TO_FIVE, datetime(2026, 11, 25, 8, 0)),  # the opening minute
        (EIGHT_TO_FIVE, datetime(2026, 11, 25, 16, 59)),
        ({}, WEDNESDAY_NIGHT),  # no hours set: always staffed, as before
    ],
    ids=["opening-minute", "last-minute", "no-hours-set"],
)
def test_staffed_hours_keep_todays_wording(app, admin, clock, hours, moment):
    save_settings(admin, hours)
    invitation = make_invitation(app)
    clock.moment = moment
    patient = Patient(app.test_client())
    welcome = reach_safety_question(patient, invitation.token)
    assert WELCOME_STAFFED in welcome
    assert CLOSED not in welcome
    step = text(patient.client.get("/step/10"))
    assert before_the_choices(step, STEP_STAFFED)
    assert CLOSED not in step and CRISIS_DEFAULT not in step
    safety = text(patient.post("/step/10", {"action": "next", "S1": "several_days"}))
    assert SAFETY_STAFFED in safety and "help is here today" in safety
    assert NOBODY not in safety


def test_the_kept_safety_question_page_follows_the_hour(app, admin, clock):
    """A step's GET is filled from a page skeleton kept per screen: the one made during
    the day must not answer at night, nor the night's the next morning."""
    save_settings(admin, EIGHT_TO_FIVE)
    invitation = make_invitation(app, when=datetime(2026, 11, 26, 10, 0))
    patient = Patient(app.test_client())
    reach_safety_question(patient, invitation.token)
    for moment, says in [
        (datetime(2026, 11, 25, 16, 0), STEP_STAFFED),
        (WEDNESDAY_NIGHT, "when the clinic opens on Thursday at 8:00\u202fAM"),
        (datetime(2026, 11, 26, 8, 0), STEP_STAFFED),
    ]:
        clock.moment = moment
        patient.open(invitation.token)  # hours later: the link again, back at step 8
        for _ in range(2):  # rendered, then from the kept skeleton
            step = text(patient.client.get("/step/10"))
            assert before_the_choices(step, says), moment


def test_the_closing_minute_is_closed(app, admin, clock):
    save_settings(admin, EIGHT_TO_FIVE)
    invitation = make_invitation(app)
    clock.moment = datetime(2026, 11, 25, 17, 0)
    welcome = text(Patient(app.test_client()).open(invitation.token))
    assert "when the clinic opens on Thursday at 8:00\u202fAM." in welcome


# --- the Settings form ---------------------------------------------------------------------


def test_settings_show_the_saved_hours_and_empty_days(app, admin):
    save_settings(admin, EIGHT_TO_FIVE)
    page = admin.get(SETTINGS).get_data(as_text=True)
    assert input_value(page, "staffed_mon_from") == "08:00"
    assert input_value(page, "staffed_fri_until") == "17:00"
    assert input_value(page, "staffed_sat_from") == ""
    assert 'type="time"' in page
    assert "<legend>Saturday</legend>" in page
    assert "Leave every day empty to treat the clinic as always staffed." in text(
        admin.get(SETTINGS)
    )


def test_emptying_every_day_removes_the_hours(app, admin):
    save_settings(admin, EIGHT_TO_FIVE)
    emptied = dict.fromkeys(EIGHT_TO_FIVE, "")
    assert save_settings(admin, emptied).status_code == 302
    assert stored(app)["staffed_hours"] == []
    assert [entry["detail"] for entry in settings_audit(app)] == ["staffed_hours"] * 2


BAD_PAIRS = [
    (
        {"staffed_tue_from": "09:00"},
        "staffed_tue_until",
        "Please fill in both times for Tuesday, or leave both empty if the clinic is closed "
        "that day.",
    ),
    (
        {"staffed_tue_until": "17:00"},
        "staffed_tue_from",
        "Please fill in both times for Tuesday, or leave both empty if the clinic is closed "
        "that day.",
    ),
    (
        {"staffed_tue_from": "17:00", "staffed_tue_until": "09:00"},
        "staffed_tue_until",
        "On Tuesday, “Until” must be later than “From”.",
    ),
    (
        {"staffed_tue_from": "09:00", "staffed_tue_until": "09:00"},
        "staffed_tue_until",
        "On Tuesday, “Until” must be later than “From”.",
    ),
    (
        {"staffed_tue_from": "9am", "staffed_tue_until": "17:00"},
        "staffed_tue_from",
        "Please enter a time like 08:30, or leave it empty.",
    ),
]


@pytest.mark.parametrize(("bad", "marked", "message"), BAD_PAIRS)
def test_a_bad_pair_keeps_everything_typed_and_saves_nothing(app, admin, bad, marked, message):
    typed = {"clinic_name": "Riverside Mood Clinic", "staffed_mon_from": "08:30"}
    typed |= {"staffed_mon_until": "16:00", **bad}
    response = save_settings(admin, typed)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in html_lib.unescape(page)
    assert page.count('class="error"') == 1
    assert f'id="{marked}-error"' in page
    assert f'aria-describedby="{marked}-error"' in page
    for name, value in typed.items():
        assert input_value(page, name) == value, name
    assert "Nothing was saved." in page
    assert "staffed_hours" not in stored(app)
    assert settings_audit(app) == []


def test_the_day_in_a_message_is_in_the_admins_language(app, admin):
    response = save_settings(admin, {"staffed_mon_from": "09:00"}, {"Accept-Language": "es"})
    assert response.status_code == 422
    page = text(response)
    assert "<legend>lunes</legend>" in page
    with app.test_request_context(), force_locale("es"):
        message = gettext(
            "Please fill in both times for %(day)s, or leave both empty if the clinic is "
            "closed that day.",
            day="lunes",
        )
    assert not message.startswith("Please") and message in page  # the catalog has it


def test_every_new_sentence_reaches_the_translators():
    """Each new string is extracted into messages.pot (so `i18n update` hands it to every
    catalog), the S1 closed-hours help too, from the questionnaire definition."""
    template = extract_template()
    for message in (
        "Staffed hours",
        "From",
        "Until",
        "On %(day)s, “Until” must be later than “From”.",
        "Nobody is at the front desk right now",
        "The clinic is closed right now. Your psychiatrist reads your answers before your visit.",
    ):
        assert template.get(message) is not None, message
    closed_help = [m for m in template if m.auto_comments == ["S1 help_closed"]]
    assert len(closed_help) == 1
    assert "python-format" in closed_help[0].flags

"""The CSV export for analysts, downloaded from the admin Integrations page as an admin
would and read back with the csv module: a byte order mark
for Excel, times with their offsets, labels in the chosen language, choice cells that
split back exactly, a medicine list in columns per row, held answers told apart from the
text "in_person", nothing of a visit not yet sent, formulas neutralised, and bad input
explained on the page with what was typed kept."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest
from flask_babel import force_locale, gettext

from patientapp.db import storage
from patientapp.exports import csv as exports
from patientapp.questionnaire import display
from patientapp.questionnaire import model as questionnaire
from patientapp.questionnaire.types import CSV_JOIN
from patientapp.web.context import get_db
from tests.conftest import (
    FULL_ANSWERS,
    Patient,
    create_user,
    csrf_from,
    finish_visit,
    input_value,
    login,
    make_invitation,
)

BOM = b"\xef\xbb\xbf"
DAY = "2026-11-25"
NAMES = (
    "Sertraline | 50 mg",
    "Lithium; 400 mg",
    'Quetiapine, "XR"',
    "=HYPERLINK(1)",
    "Line one\nline two",
    "舍曲林",
)
FEELINGS = ("helping", "mixed", "not_helping", "not_sure", "helping", "")


def sign_in_admin(app):
    create_user(app, "admin@example.org", "admin")
    client = app.test_client()
    assert login(client, "admin@example.org").status_code == 302
    return client


@pytest.fixture
def admin(app):
    return sign_in_admin(app)


def audit_rows(db, action):
    return [row for row in db["audit_log"].rows if row["action"] == action]


def export_form(admin, **headers) -> tuple[str, dict, list[tuple[str, bool]]]:
    """The export form on the Integrations page: its action, its date boxes' values and
    the language options with which one is selected."""
    page = admin.get("/staff/admin/integrations", headers=headers)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    form = text.split('aria-labelledby="export"')[0].rsplit("<form", 1)[1]
    form += text.split('aria-labelledby="export"')[1].split("</form>")[0]
    [action] = re.findall(r'action="([^"]+)"', form)
    assert 'method="get"' in form
    dates = {name: input_value(text, name) for name in ("since", "until")}
    select = form.split('name="language"')[1].split("</select>")[0]
    options = [
        (value, "selected" in attributes)
        for attributes, value in re.findall(r'<option([^>]*?value="([^"]*)"[^>]*)>', select)
    ]
    return html.unescape(action), dates, options


def download(admin, since=DAY, until=DAY, language=None, **headers):
    """Fill the form in as a person would (the language as the page selects it, unless
    given) and send it."""
    action, _dates, options = export_form(admin)
    if language is None:
        [language] = [value for value, selected in options if selected]
    query = urlencode({"since": since, "until": until, "language": language})
    return admin.get(f"{action}?{query}", headers=headers)


def read(response) -> list[dict]:
    """The download as the csv module reads it, after checking it is UTF-8 from a BOM."""
    assert response.status_code == 200, response.status_code
    body = response.get_data()
    assert body.startswith(BOM)
    text = body.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def by_ref(rows) -> dict[str, dict]:
    return {row["patient_ref"]: row for row in rows}


def journey(app, ref, steps, language="", in_person=(), submit=True):
    """A patient through the pages, each step posted whole (its token from the page the
    step opens on), then sent or left in progress."""
    invitation = make_invitation(app, patient_ref=ref, language=language)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 11) if submit else range(1, 3):
        page = patient.client.get(f"/step/{number}", follow_redirects=True)
        data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "action": "next"}
        patient.client.post(f"/step/{number}", data={**data, **steps.get(number, {})})
    if submit:
        patient.post("/review", {"action": "submit", "in_person": list(in_person)})
    return invitation.visit_id


def translated(app, language, item_id, choice_id) -> str:
    with app.test_request_context(), force_locale(language):
        item = questionnaire.default().items[item_id]
        return display.label(item, choice_id)


# --- the download ------------------------------------------------------------------------------


def test_the_page_downloads_a_utf8_csv_with_a_bom_and_audits_it(app, admin, db):
    first = finish_visit(app, ref="A-1").visit_id
    second = make_invitation(app, patient_ref="B-2").visit_id
    action, dates, options = export_form(admin)
    assert action == "/staff/admin/export.csv"
    assert set(dates) == {"since", "until"}
    assert ("en", True) in options and {value for value, _ in options} == set(
        app.config["OFFERED_LANGUAGES"]
    )
    response = download(admin)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="visits-{DAY}-{DAY}-en.csv"'
    )
    rows = read(response)
    assert [row["visit_id"] for row in rows] == [str(first), str(second)]
    assert rows[0]["M2"] == "mixed" and rows[0]["M2 label"] == "Mixed"
    assert rows[0]["M4"] == "8" and rows[0]["M4 status"] == "answered"
    # Audited as before: each visit, then the export with its range.
    entries = audit_rows(db, "csv_exported")
    assert sorted(e["visit_id"] for e in entries if e["visit_id"]) == [first, second]
    assert [e["detail"] for e in entries if not e["visit_id"]] == [f"{DAY} to {DAY}: 2 visits"]
    # Every row has exactly the header's cells.
    text = response.get_data().decode("utf-8-sig")
    lengths = {len(line) for line in csv.reader(io.StringIO(text, newline=""))}
    assert len(lengths) == 1


def test_every_time_has_its_offset(app):
    with app.app_context():
        storage.save_settings(get_db(), {"time_zone": "America/Chicago"})
    admin = sign_in_admin(app)  # after the change of zone, which moves the session's times
    visit_id = finish_visit(app, ref="A-1").visit_id
    [row] = read(download(admin))
    assert row["visit_id"] == str(visit_id)
    assert row["appointment_at"] == "2026-11-25T14:00:00-06:00"
    for name in ("appointment_at", "started_at", "submitted_at"):
        moment = datetime.fromisoformat(row[name])
        assert moment.utcoffset() == timedelta(hours=-6), name


@pytest.mark.parametrize("language", ["es", "ar", "zh_Hans"])
def test_labels_are_in_the_chosen_language_as_the_summary_reads_them(app, admin, language):
    finish_visit(app, ref="A-1")
    response = download(admin, language=language)
    assert response.headers["Content-Disposition"].endswith(f'-{language}.csv"')
    [row] = read(response)
    assert row["M2"] == "mixed"  # ids never change
    assert row["M2 label"] == translated(app, language, "M2", "mixed") != "Mixed"
    # A label with a context of its own (a medicine's feeling) reads as on the summary.
    assert row["M1 1 label"] == translated(app, language, "M1", "mixed")
    assert row["T1 label"].split(CSV_JOIN) == [
        translated(app, language, "T1", choice) for choice in ("worried", "tired")
    ]


def test_the_clinics_default_language_is_chosen_first(app, admin):
    app.config["DEFAULT_LANGUAGE"] = "fr"
    finish_visit(app, ref="A-1")
    _action, _dates, options = export_form(admin)
    assert [value for value, selected in options if selected] == ["fr"]
    # A link bookmarked before there was a choice gets the default too.
    [row] = read(admin.get(f"/staff/admin/export.csv?since={DAY}&until={DAY}"))
    assert row["M2 label"] == translated(app, "fr", "M2", "mixed")


# --- cells that split back ------------------------------------------------------------------------


def test_choice_cells_split_back_on_the_documented_separator(app, admin):
    finish_visit(app, ref="A-1")
    [row] = read(download(admin))
    assert CSV_JOIN == "|"
    assert row["T1"].split("|") == ["worried", "tired"]
    assert row["T1 label"].split("|") == ["Worried", "Tired"]
    assert row["M3"].split("|") == ["safety_net", "crutch"]
    assert len(row["M5 label"].split("|")) == len(row["M5"].split("|")) == 2


def test_no_label_in_any_language_holds_the_separator(app, monkeypatch):
    """Labels are ours; should a translation ever hold "|", the export writes "/"."""
    definition = questionnaire.default()
    with app.test_request_context():
        for code in app.config["OFFERED_LANGUAGES"]:
            with force_locale(code):
                for item in definition.items.values():
                    for choice in item.choices or ():
                        assert CSV_JOIN not in display.label(item, choice.id), (code, choice.id)
        item = definition.items["T1"]
        monkeypatch.setattr(exports, "choice_label", lambda item, choice: "Up|down")
        assert exports._label(item, "worried") == "Up/down"
        assert exports._label(item, "no_such_choice") == "no_such_choice"
        assert exports._label(item, None) == ""


def test_six_medicines_have_a_column_each_whatever_their_names_hold(app, admin):
    rows = {f"M1-{n}-name": name for n, name in enumerate(NAMES)}
    rows |= {f"M1-{n}-feeling": feeling for n, feeling in enumerate(FEELINGS)}
    medicines = {k: v for k, v in FULL_ANSWERS[2].items() if not k.startswith("M1-")}
    journey(app, "SIX", {**FULL_ANSWERS, 2: {**medicines, **rows}})
    finish_visit(app, ref="ONE")
    found = by_ref(read(download(admin)))
    six, one = found["SIX"], found["ONE"]
    assert six["M1"] == "6" and one["M1"] == "1"
    written = [six[f"M1 {n} name"] for n in range(1, 7)]
    assert written[:3] + written[4:] == [NAMES[0], NAMES[1], NAMES[2], NAMES[4], NAMES[5]]
    assert written[3] == "'=HYPERLINK(1)"  # neutralised, never a formula
    assert [six[f"M1 {n} feeling"] for n in range(1, 7)] == list(FEELINGS)
    assert six["M1 6 label"] == ""
    assert (one["M1 1 name"], one["M1 1 feeling"], one["M1 1 label"]) == (
        "Sertraline",
        "mixed",
        "Mixed",
    )
    assert one["M1 2 name"] == one["M1 2 feeling"] == ""


# --- what each item's cells mean ------------------------------------------------------------


def test_a_held_answer_is_told_apart_from_the_text_in_person(app, admin):
    typed = {**FULL_ANSWERS, 1: {"T1": ["worried"], "T2": "in_person"}}
    journey(app, "TYPED", typed)
    finish_visit(app, ref="HELD", in_person=("T2", "M1", "F2"))
    found = by_ref(read(download(admin)))
    assert (found["TYPED"]["T2"], found["TYPED"]["T2 status"]) == ("in_person", "answered")
    held = found["HELD"]
    assert (held["T2"], held["T2 status"]) == ("", "held")
    assert held["M1"] == held["M1 1 name"] == held["M1 1 feeling"] == ""
    assert held["M1 status"] == held["F2 status"] == "held"
    assert held["F2"] == held["F2 label"] == held["F2 text"] == ""
    assert "in_person" not in held.values()
    assert held["M2 status"] == "answered"


def test_skipped_not_asked_and_not_sent_each_say_so(app, admin):
    journey(app, "SKIPPED", {})
    not_taking = {**FULL_ANSWERS, 2: {"M0": "no", "M6": ["people"]}, 3: {"P3": "same"}}
    journey(app, "NO-MEDS", not_taking)
    journey(app, "STARTED", FULL_ANSWERS, submit=False)
    make_invitation(app, patient_ref="INVITED")
    found = by_ref(read(download(admin)))
    assert found["SKIPPED"]["T2"] == "" and found["SKIPPED"]["T2 status"] == "skipped"
    assert found["NO-MEDS"]["M0"] == "no" and found["NO-MEDS"]["M0 status"] == "answered"
    assert found["NO-MEDS"]["M1"] == "" and found["NO-MEDS"]["M1 status"] == "not_asked"
    assert found["NO-MEDS"]["P2 status"] == "skipped"
    # Answers leave only once sent: the patient may still change them or hold them.
    started = found["STARTED"]
    assert started["status"] == "in_progress"
    assert started["T2"] == started["M2"] == "" and started["T2 status"] == "not_sent"
    assert found["INVITED"]["S1 status"] == "not_sent"


def test_formulas_in_patient_text_are_neutralised(app, admin):
    answers = {
        **FULL_ANSWERS,
        1: {"T1": ["worried"], "T2": "=cmd|'/c calc'!A1"},
        4: {"F2": "yes", "F2_text": "@SUM(1)"},
    }
    journey(app, "=HYPERLINK(1)", answers)
    [row] = read(download(admin))
    assert row["patient_ref"] == "'=HYPERLINK(1)"
    assert row["T2"] == "'=cmd|'/c calc'!A1"
    assert row["F2 text"] == "'@SUM(1)"
    for value in row.values():
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"language": "xx"}, "language", "Please pick one of the choices shown."),
        ({"since": "2026-13-01"}, "since", "Please enter a valid date."),
        ({"until": "9999-12-31"}, "until", "Please enter a valid date."),
        ({"since": "2026-11-26"}, "until", "The end date must not be before the start date."),
        (
            {"since": "2024-01-01", "until": "2026-01-01"},
            "until",
            "Please choose at most one year.",
        ),
    ],
)
def test_bad_input_is_explained_on_the_page_keeping_what_was_typed(
    app, admin, db, query, field, message
):
    typed = {"since": DAY, "until": DAY, "language": "en", **query}
    response = admin.get(f"/staff/admin/export.csv?{urlencode(typed)}")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'<p class="error" id="{field}-error">{html.escape(message, quote=False)}</p>' in page
    for name in ("since", "until"):
        assert input_value(page, name) == typed[name]
    assert audit_rows(db, "csv_exported") == []


def test_the_message_is_in_the_staff_members_language(app, admin):
    response = admin.get(
        f"/staff/admin/export.csv?since=2026-13-01&until={DAY}&language=xx",
        headers={"Accept-Language": "es"},
    )
    assert response.status_code == 422
    with app.test_request_context(), force_locale("es"):
        choice = gettext("Please pick one of the choices shown.")
        date = gettext("Please enter a valid date.")
    page = html.unescape(response.get_data(as_text=True))
    assert choice in page and date in page
    assert choice != "Please pick one of the choices shown."
    assert input_value(response.get_data(as_text=True), "since") == "2026-13-01"

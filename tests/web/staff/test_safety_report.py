"""The day's safety report (/staff/safety-report, its CSV, the board's line of figures),
seeded through the real patient pages and the real acknowledge button.

The seeded day, 2026-11-25 (alerts escalate after 5 minutes):
  09:00  SR-NOTE answers "Nearly every day"; acknowledged at 09:02 with a note (2 min)
  09:00  SR-SLOW answers "Several days"; acknowledged at 09:07 (7 min, escalated at 09:05)
  09:10  SR-OPEN answers "More than half the days", changes it to "Not at all" at 09:11 and
         sends; nobody acknowledges it (open, escalated at 09:15)
  the day before, 23:58, SR-EVE's alert: on the 24th's report, never on the 25th's
The page is read at 09:20: 3 alerts, 2 acknowledged, 1 open, 2 escalated, median 4.5 min,
longest 7 min.
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from contextlib import closing
from datetime import datetime, time

import pytest
from babel.dates import format_time

from patientapp.db import storage
from tests.conftest import FULL_ANSWERS, Patient, create_user, finish_visit, login, staff_post

DAY = "2026-11-25"
REPORT = f"/staff/safety-report?day={DAY}"
CSV_URL = f"/staff/safety-report.csv?day={DAY}"
NOTE = "spoke with the patient at the desk"


def at(hour: int, minute: int) -> str:
    """A time as the English pages print it (CLDR's own spacing before AM)."""
    return format_time(time(hour, minute), "short", locale="en")


def worrying(value: str) -> dict:
    answers = dict(FULL_ANSWERS)
    answers[10] = {"S1": value}
    return answers


def changed_to_not_at_all(app, ref: str, clock) -> int:
    """A patient who answers "More than half the days", then a minute later goes back,
    changes it to "Not at all" and sends: the worrying answer stays on the report."""
    from tests.conftest import make_invitation

    invitation = make_invitation(app, patient_ref=ref)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 11):
        answers = worrying("more_than_half") if number == 10 else FULL_ANSWERS
        patient.post(f"/step/{number}", {"action": "next", **answers.get(number, {})})
    clock.advance(minutes=1)
    patient.post("/step/10", {"action": "next", "S1": "not_at_all"})
    patient.post("/review", {"action": "submit"})
    return invitation.visit_id


def audit_rows(app) -> list[tuple]:
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return [
            (row["action"], row["visit_id"], row["detail"])
            for row in db.query("SELECT action, visit_id, detail FROM audit_log ORDER BY id")
        ]


def report_entries(app) -> list[tuple]:
    return [row for row in audit_rows(app) if row[0].startswith("safety_report")]


@pytest.fixture
def seeded(app, clock):
    """The seeded day above; returns the visit ids by reference, ready to read at 09:20."""
    dr_lee = create_user(app, "dr@example.org", "psychiatrist", name="Dr. Lee")
    create_user(app, "desk@example.org", "frontdesk", name="Sam at the desk")
    clock.moment = datetime(2026, 11, 24, 23, 58)
    eve = finish_visit(app, worrying("nearly_every_day"), ref="SR-EVE").visit_id
    clock.moment = datetime(2026, 11, 25, 9, 0)
    note = finish_visit(app, worrying("nearly_every_day"), ref="SR-NOTE").visit_id
    slow = finish_visit(app, worrying("several_days"), ref="SR-SLOW").visit_id
    with closing(storage.connect(app.config["DATABASE"])) as db:  # as the invitation form would
        db.execute("UPDATE visits SET psychiatrist_id = ? WHERE id = ?", (dr_lee, note))
        db.conn.commit()
    desk = app.test_client()
    assert login(desk, "desk@example.org").status_code == 302
    clock.advance(minutes=2)  # 09:02
    staff_post(desk, f"/staff/visits/{note}/acknowledge", {"note": NOTE})
    clock.advance(minutes=5)  # 09:07
    staff_post(desk, f"/staff/visits/{slow}/acknowledge")
    clock.advance(minutes=3)  # 09:10
    opened = changed_to_not_at_all(app, "SR-OPEN", clock)
    clock.moment = datetime(2026, 11, 25, 9, 20)
    return {"SR-EVE": eve, "SR-NOTE": note, "SR-SLOW": slow, "SR-OPEN": opened}


@pytest.fixture
def dr(app, seeded):
    client = app.test_client()
    assert login(client, "dr@example.org").status_code == 302
    return client


@pytest.fixture
def desk(app, seeded):
    client = app.test_client()
    assert login(client, "desk@example.org").status_code == 302
    return client


def figures(page: str) -> dict[str, str]:
    return dict(re.findall(r'<dd data-figure="(\w+)">([^<]*)</dd>', page))


def rows(page: str) -> dict[int, str]:
    """Each visit's table row, as text with the tags left in."""
    return {
        int(visit): row
        for visit, row in re.findall(r'<tr data-visit="(\d+)"[^>]*>(.*?)</tr>', page, re.S)
    }


def text(fragment: str) -> str:
    # ASCII white space only: CLDR puts a narrow no-break space before "AM".
    plain = re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", fragment))
    return html_lib.unescape(plain).strip()


# --- the page --------------------------------------------------------------------------------


def test_the_day_figures_at_the_top(dr):
    page = dr.get(REPORT).get_data(as_text=True)
    assert figures(page) == {
        "alerts": "3",
        "acknowledged": "2",
        "open": "1",
        "escalated": "2",
        "median": "4.5",
        "longest": "7",
    }


def test_each_alert_with_its_answers_acknowledgement_minutes_and_escalation(dr, seeded):
    page = dr.get(REPORT).get_data(as_text=True)
    shown = rows(page)
    # The open one first, marked; then the acknowledged ones in the order raised.
    assert list(shown) == [seeded["SR-OPEN"], seeded["SR-NOTE"], seeded["SR-SLOW"]]
    assert seeded["SR-EVE"] not in shown  # raised the day before
    opened = text(shown[seeded["SR-OPEN"]])
    assert "Still open" in opened and "Not acknowledged" in opened
    assert "open for 10 min" in opened
    # The worrying answer is listed though the patient changed it, and the change is named.
    assert f"“More than half the days” at {at(9, 10)}" in opened
    assert f"Changed to “Not at all” at {at(9, 11)}" in opened
    assert f"Yes, at {at(9, 15)}" in opened and "No on-call e-mail sent" in opened
    assert 'class="still-open"' in page.split(f'data-visit="{seeded["SR-OPEN"]}"')[1][:30]

    noted = text(shown[seeded["SR-NOTE"]])
    assert f"“Nearly every day” at {at(9, 0)}" in noted
    assert f"{at(9, 2)} by Sam at the desk" in noted and f"Note: {NOTE}" in noted
    assert "Dr. Lee" in noted
    assert re.search(r"\b2\b", noted.split(NOTE)[1]) and "Still open" not in noted
    assert "No" in noted and "Yes, at" not in noted  # 2 minutes: not escalated

    slow = text(shown[seeded["SR-SLOW"]])
    assert f"“Several days” at {at(9, 0)}" in slow and f"{at(9, 7)} by Sam at the desk" in slow
    assert f"Yes, at {at(9, 5)}" in slow
    # Each reference links to its summary, with its appointment time (14:00 on the
    # invitation's day; SR-OPEN was invited at 09:10, so 14:10).
    for ref, appointment in (("SR-OPEN", at(14, 10)), ("SR-NOTE", at(14, 0))):
        visit = seeded[ref]
        assert f'<a href="/staff/visits/{visit}/summary">{ref}</a>' in shown[visit]
        assert appointment in text(shown[visit])


def test_the_minutes_column_says_2_and_7(dr, seeded):
    shown = rows(dr.get(REPORT).get_data(as_text=True))
    minutes = {
        visit: text(re.search(r'<td class="minutes">(.*?)</td>', row, re.S).group(1))
        for visit, row in shown.items()
    }
    assert minutes == {
        seeded["SR-OPEN"]: "open for 10 min",
        seeded["SR-NOTE"]: "2",
        seeded["SR-SLOW"]: "7",
    }


def test_the_day_before_has_its_own_alert_and_an_empty_day_says_so(dr, seeded):
    eve = dr.get("/staff/safety-report?day=2026-11-24").get_data(as_text=True)
    assert list(rows(eve)) == [seeded["SR-EVE"]]
    assert figures(eve)["open"] == "1"
    empty = dr.get("/staff/safety-report?day=2026-11-20")
    page = empty.get_data(as_text=True)
    assert empty.status_code == 200
    assert "No safety alerts were raised on this day." in page and "<table" not in page
    assert figures(page) == {
        "alerts": "0",
        "acknowledged": "0",
        "open": "0",
        "escalated": "0",
        "median": "—",
        "longest": "—",
    }


def test_today_is_the_default_and_the_page_has_a_day_picker_and_print(dr):
    page = dr.get("/staff/safety-report").get_data(as_text=True)
    assert figures(page)["alerts"] == "3"  # the clock's day, 2026-11-25
    assert '<input type="date" id="day" name="day" value="2026-11-25"' in page
    assert 'href="/staff/safety-report?day=2026-11-24"' in page  # previous day
    assert 'href="/staff/safety-report?day=2026-11-26"' in page  # next day
    assert f'href="/staff/safety-report?day={DAY}&amp;print=1" data-print-link>Print' in page
    assert f'href="/staff/safety-report.csv?day={DAY}"' in page
    printed = dr.get(f"{REPORT}&print=1").get_data(as_text=True)
    assert "data-autoprint" in printed and "data-autoprint" not in page


# --- the CSV -----------------------------------------------------------------------------------


def test_the_csv_has_the_same_rows(dr, seeded):
    response = dr.get(CSV_URL)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        response.headers["Content-Disposition"]
        == 'attachment; filename="safety-report-2026-11-25.csv"'
    )
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["patient_ref"], r["answer"]) for r in table] == [
        ("SR-OPEN", "more_than_half"),
        ("SR-NOTE", "nearly_every_day"),
        ("SR-SLOW", "several_days"),
    ]
    by_ref = {r["patient_ref"]: r for r in table}
    assert by_ref["SR-NOTE"]["psychiatrist"] == "Dr. Lee"
    assert by_ref["SR-OPEN"]["answer_now"] == "not_at_all"
    assert by_ref["SR-OPEN"]["answered_at"] == "2026-11-25 09:10:00"
    assert by_ref["SR-OPEN"]["still_open"] == "yes"
    assert by_ref["SR-OPEN"]["escalated_at"] == "2026-11-25 09:15:00"
    assert by_ref["SR-NOTE"]["answer_label"] == "Nearly every day"
    assert by_ref["SR-NOTE"]["acknowledged_by"] == "Sam at the desk"
    assert by_ref["SR-NOTE"]["acknowledged_note"] == NOTE
    assert [by_ref[r]["minutes_to_acknowledge"] for r in ("SR-OPEN", "SR-NOTE", "SR-SLOW")] == [
        "",
        "2",
        "7",
    ]
    assert [by_ref[r]["escalated"] for r in ("SR-OPEN", "SR-NOTE", "SR-SLOW")] == [
        "yes",
        "no",
        "yes",
    ]
    assert by_ref["SR-SLOW"]["alert_raised_at"] == "2026-11-25 09:00:00"
    assert by_ref["SR-SLOW"]["acknowledged_at"] == "2026-11-25 09:07:00"


def test_a_note_that_looks_like_a_formula_stays_text_in_the_csv(app, clock, dr):
    visit = finish_visit(app, worrying("several_days"), ref="SR-FORMULA").visit_id
    staff_post(dr, f"/staff/visits/{visit}/acknowledge", {"note": '=HYPERLINK("x")'})
    table = csv.DictReader(io.StringIO(dr.get(CSV_URL).get_data(as_text=True)))
    [row] = [r for r in table if r["patient_ref"] == "SR-FORMULA"]
    assert row["acknowledged_note"] == '\'=HYPERLINK("x")'


# --- who may read it, and the audit log ----------------------------------------------------------


@pytest.mark.parametrize("url", [REPORT, CSV_URL, f"{REPORT}&print=1"])
def test_front_desk_gets_403_and_nothing_is_audited(app, desk, url):
    before = report_entries(app)
    response = desk.get(url)
    assert response.status_code == 403
    body = response.get_data(as_text=True)
    assert "SR-NOTE" not in body and NOTE not in body
    assert report_entries(app) == before == []


def test_an_admin_reads_it_too(app, seeded):
    create_user(app, "boss@example.org", "admin")
    client = app.test_client()
    login(client, "boss@example.org")
    assert client.get(REPORT).status_code == 200
    assert client.get(CSV_URL).status_code == 200


@pytest.mark.parametrize(
    ("url", "action"),
    [
        (REPORT, "safety_report_viewed"),
        (f"{REPORT}&print=1", "safety_report_printed"),
        (CSV_URL, "safety_report_exported"),
    ],
)
def test_each_read_is_audited_per_visit_and_once_for_the_day(app, dr, seeded, url, action):
    assert dr.get(url).status_code == 200
    shown = [seeded["SR-OPEN"], seeded["SR-NOTE"], seeded["SR-SLOW"]]
    assert report_entries(app) == [
        *[(action, visit, "") for visit in shown],
        (action, None, "2026-11-25: 3 visits"),
    ]


def test_an_empty_day_is_audited_as_read_too(app, dr):
    dr.get("/staff/safety-report?day=2026-11-20")
    assert report_entries(app) == [("safety_report_viewed", None, "2026-11-20: 0 visits")]


# --- a bad day ----------------------------------------------------------------------------

BAD_DAYS = ["2026-13-45", "yesterday", "9999-12-31", "0001-01-01", "2026-11-25'--", "%00"]
MESSAGE = "That is not a day the report can show."


@pytest.mark.parametrize("day", BAD_DAYS)
def test_a_bad_day_gets_a_clear_message_never_a_500(app, dr, day):
    page = dr.get("/staff/safety-report", query_string={"day": day})
    assert page.status_code == 400
    body = page.get_data(as_text=True)
    assert MESSAGE in body and 'aria-invalid="true"' in body
    assert "SR-NOTE" not in body  # nothing of any day is shown with it
    exported = dr.get("/staff/safety-report.csv", query_string={"day": day})
    assert exported.status_code == 400 and MESSAGE in exported.get_data(as_text=True)
    assert exported.mimetype == "text/html"
    assert report_entries(app) == []


def test_the_message_is_marked_for_translation():
    """Looked up in the reader's language when shown (the catalogs are completed later)."""
    from flask_babel import LazyString

    from patientapp.staff import report

    assert isinstance(report.BAD_DAY, LazyString)


# --- the board ----------------------------------------------------------------------------------


def test_the_board_shows_the_days_figures_and_links_readers_to_the_report(dr, desk):
    line = "Today's alerts: 3 · acknowledged in 4.5 min (median), longest 7 min · 1 open"
    board = html_lib.unescape(dr.get("/staff/").get_data(as_text=True))
    assert f'<a href="/staff/safety-report?day={DAY}">{line}</a>' in board
    assert f'href="/staff/safety-report?day={DAY}">Safety report</a>' in board
    front = html_lib.unescape(desk.get("/staff/").get_data(as_text=True))
    assert f'<p class="alert-figures">{line}</p>' in front
    assert "/staff/safety-report" not in front  # the figures, never the link


def test_the_boards_poll_carries_the_same_line_so_it_changes_without_a_reload(dr, desk):
    """board.js writes board.json's line over the page's: the words the page shows."""
    line = "Today's alerts: 3 · acknowledged in 4.5 min (median), longest 7 min · 1 open"
    for client in (dr, desk):
        assert client.get("/staff/board.json").get_json()["figures"] == line
    other = dr.get("/staff/board.json?day=2026-11-24").get_json()["figures"]
    assert other == "Alerts on this day: 1 · 1 open"
    chinese = desk.get("/staff/board.json?lang=zh_Hans").get_json()["figures"]
    page = html_lib.unescape(desk.get("/staff/?lang=zh_Hans").get_data(as_text=True))
    assert f'<p class="alert-figures">{chinese}</p>' in page and "Today" not in chinese


def test_another_days_board_names_its_own_figures(dr):
    board = html_lib.unescape(dr.get("/staff/?day=2026-11-24").get_data(as_text=True))
    assert "Alerts on this day: 1 · 1 open" in board
    quiet = html_lib.unescape(dr.get("/staff/?day=2026-11-20").get_data(as_text=True))
    assert "Alerts on this day: 0<" in quiet

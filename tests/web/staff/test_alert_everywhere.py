"""An open safety alert is noticed on every staff page (issue 20, part 2): the banner under
the menu, "(n)" in the tab's title and a red badge favicon, all server-rendered (so they
show without JavaScript), escalated once the Settings minutes pass, gone once
acknowledged; /staff/alerts.json gives static/alerts.js the same counts (never who, and
not counted as activity); the Settings sound choice is off until an admin turns it on.
The patient's side never carries any of it."""

from __future__ import annotations

import html as html_lib
import re
from contextlib import closing
from html.parser import HTMLParser

import pytest

from patientapp.db import storage
from patientapp.staff import alerts as open_alerts
from tests.conftest import (
    FULL_ANSWERS,
    Patient,
    create_user,
    csrf_from,
    finish_visit,
    login,
    make_invitation,
    staff_post,
)

BAR = re.compile(r'<div id="alert-bar" class="([^"]*)"( hidden)?>(.*?)</div>', re.S)
REGION = re.compile(r'<div id="staff-alerts".*?<p id="alert-signed-out"[^>]*></p>\s*</div>', re.S)
TITLE = re.compile(r"<title>(.*?)</title>", re.S)
FAVICON = re.compile(r'<link rel="icon" href="([^"]*)">')
PLAIN = "data:,"
ONE = "1 safety alert at the front desk"
# No outgoing mail here (the default install): the bar says nobody is e-mailed.
ESCALATED = "Not acknowledged for 5 minutes: no on-call e-mail is set up"


# --- helpers -----------------------------------------------------------------------------


def plain(fragment: str) -> str:
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


class Shown:
    """What one page shows of the open alerts."""

    def __init__(self, response):
        self.status = response.status_code
        self.html = response.get_data(as_text=True)
        bar = BAR.search(self.html)
        self.has_bar = bar is not None
        self.bar_class = bar.group(1) if bar else ""
        self.visible = bool(bar) and not bar.group(2)
        self.bar = plain(bar.group(3)) if bar else ""
        self.bar_html = bar.group(3) if bar else ""
        region = REGION.search(self.html)
        self.region = region.group(0) if region else ""
        self.title = html_lib.unescape(TITLE.search(self.html).group(1))
        self.favicon = html_lib.unescape(FAVICON.search(self.html).group(1))

    @property
    def escalated(self) -> bool:
        return "escalated" in self.bar_class.split()


def shown(client, path: str) -> Shown:
    return Shown(client.get(path))


def raise_alert(app, ref: str = "ALERT-1"):
    """A worrying S1 answer through the real patient pages, then the visit sent."""
    answers = dict(FULL_ANSWERS)
    answers[10] = {"S1": "nearly_every_day"}
    return finish_visit(app, answers, ref=ref)


def staff_pages(visit_id: int, admin_id: int) -> dict[str, int]:
    """Every staff page an admin reaches (path -> its status), the error page included."""
    return {
        "/staff/": 200,
        "/staff/?day=2026-12-01": 200,  # another day's board: the alert is still open
        "/staff/?auto=1": 200,  # the board's own refresh without JavaScript
        "/staff/invitations/new": 200,
        f"/staff/visits/{visit_id}/invitation": 200,
        f"/staff/visits/{visit_id}/summary": 200,
        f"/staff/visits/{visit_id}/print": 200,
        "/staff/admin/users": 200,
        f"/staff/admin/users/{admin_id}": 200,
        "/staff/admin/settings": 200,
        "/staff/admin/audit": 200,
        "/staff/admin/integrations": 200,
        "/staff/account": 200,
        "/staff/account/mfa": 200,
        "/staff/admin/users/999999": 404,
    }


@pytest.fixture
def admin(app, client):
    user_id = create_user(app, "boss@example.org", "admin", name="Alex Admin")
    login(client, "boss@example.org")
    client.user_id = user_id
    return client


def signed_in(app, role: str):
    client = app.test_client()
    create_user(app, f"{role}@example.org", role)
    assert login(client, f"{role}@example.org").status_code == 302
    return client


def last_seen(app) -> list[str]:
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return [row["last_seen_at"] for row in db.query("SELECT last_seen_at FROM staff_sessions")]


# --- every staff page ----------------------------------------------------------------------


def test_no_open_alert_shows_nothing(app, admin):
    invitation = make_invitation(app)
    for path, status in staff_pages(invitation.visit_id, admin.user_id).items():
        if "summary" in path or "print" in path:
            continue  # not sent: no summary
        page = shown(admin, path)
        assert page.status == status, path
        assert page.has_bar and not page.visible, path  # there, hidden, for the script
        assert not page.title.startswith("("), (path, page.title)
        assert page.favicon == PLAIN, path
    assert admin.get("/staff/alerts.json").get_json() == {
        "open": 0,
        "escalated": 0,
        "newest": 0,
        "text": "",
        "escalated_text": "",
    }


def test_every_staff_page_shows_an_open_alert(app, admin):
    invitation = raise_alert(app)
    for path, status in staff_pages(invitation.visit_id, admin.user_id).items():
        page = shown(admin, path)
        assert page.status == status, path
        assert page.visible, f"no banner on {path}"
        assert page.bar.startswith(ONE), (path, page.bar)
        # A link to the board, except on a board (its alerts are at the top already).
        on_board = path.split("?")[0] == "/staff/"
        assert ('href="/staff/#alerts"' in page.bar_html) != on_board, path
        assert not page.escalated and ESCALATED not in page.bar, path
        assert page.title.startswith("(1) "), (path, page.title)
        assert page.favicon == open_alerts.badge(1), path
        assert page.favicon.startswith("data:image/svg+xml,%3Csvg"), path
        # Counts only: who it is stays on the board (and the psychiatrist's summary,
        # whose own title names the patient).
        assert "ALERT-1" not in page.region, path
        if "/summary" not in path and "/print" not in path:
            assert "ALERT-1" not in page.title, path
        assert 'src="/static/alerts.js' in page.html, path
    board = shown(admin, "/staff/").html
    assert "ALERT-1" in board  # the board itself still names the patient


def test_the_title_keeps_the_page_name(app, admin):
    raise_alert(app)
    assert shown(admin, "/staff/").title == "(1) Board · Your clinic"
    assert shown(admin, "/staff/invitations/new").title.startswith("(1) New invitation · ")


def test_two_alerts_are_counted_in_the_plural(app, admin):
    raise_alert(app, "ALERT-1")
    raise_alert(app, "ALERT-2")
    page = shown(admin, "/staff/invitations/new")
    assert page.bar.startswith("2 safety alerts at the front desk")
    assert page.title.startswith("(2) ")
    assert page.favicon == open_alerts.badge(2) != open_alerts.badge(1)
    assert admin.get("/staff/alerts.json").get_json()["open"] == 2


def test_the_badge_shows_at_most_two_characters():
    assert open_alerts.badge_label(9) == "9"
    assert open_alerts.badge_label(10) == "9+"
    assert "%3E9%2B%3C" in open_alerts.badge(12)  # >9+<


def test_escalated_after_the_settings_minutes(app, admin, clock):
    raise_alert(app)
    clock.advance(minutes=4, seconds=59)
    page = shown(admin, "/staff/account")
    assert page.visible and not page.escalated and ESCALATED not in page.bar
    assert admin.get("/staff/alerts.json").get_json()["escalated"] == 0
    clock.advance(seconds=1)  # five minutes unacknowledged
    for path in ("/staff/", "/staff/account", "/staff/admin/settings"):
        page = shown(admin, path)
        assert page.escalated, path
        assert page.bar.startswith(f"{ONE} {ESCALATED}"), (path, page.bar)
        assert page.title.startswith("(1) ")
    data = admin.get("/staff/alerts.json").get_json()
    assert data.pop("newest") > 0  # the newest open alert's opaque marker
    assert data == {
        "open": 1,
        "escalated": 1,
        "text": ONE,
        "escalated_text": ESCALATED,
    }


def test_escalation_follows_the_minutes_in_settings(app, admin, clock, db):
    storage.save_settings(db, {"escalate_after_minutes": 10})
    raise_alert(app)
    clock.advance(minutes=9)
    assert not shown(admin, "/staff/").escalated
    clock.advance(minutes=1)
    page = shown(admin, "/staff/")
    assert page.escalated and "Not acknowledged for 10 minutes: no on-call" in page.bar


def test_an_acknowledged_alert_is_gone_everywhere(app, admin, clock):
    invitation = raise_alert(app)
    clock.advance(minutes=6)  # escalated by now
    assert shown(admin, "/staff/account").escalated
    response = staff_post(admin, f"/staff/visits/{invitation.visit_id}/acknowledge")
    assert response.status_code == 302
    for path, status in staff_pages(invitation.visit_id, admin.user_id).items():
        page = shown(admin, path)
        assert page.status == status, path
        assert not page.visible, path
        assert not page.title.startswith("("), (path, page.title)
        assert page.favicon == PLAIN, path
    assert admin.get("/staff/alerts.json").get_json()["open"] == 0


# --- every role ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["frontdesk", "psychiatrist"])
def test_every_role_sees_it(app, role, clock):
    staff = signed_in(app, role)
    invitation = raise_alert(app)
    paths = ["/staff/", "/staff/invitations/new", "/staff/account"]
    if role == "psychiatrist":  # not this visit's psychiatrist: it has none
        paths.append(f"/staff/visits/{invitation.visit_id}/summary")
    for path in paths:
        page = shown(staff, path)
        assert page.status == 200 and page.visible and page.title.startswith("(1) "), path
    clock.advance(minutes=5)
    assert all(shown(staff, path).escalated for path in paths)
    assert staff.get("/staff/alerts.json").get_json()["escalated"] == 1


# --- the endpoint ------------------------------------------------------------------------


def test_alerts_json_gives_counts_never_who(app, admin):
    invitation = raise_alert(app, "MRN 4471")
    response = admin.get("/staff/alerts.json")
    assert response.status_code == 200
    assert response.headers.get("Cache-Control") == "no-store"
    data = response.get_json()
    assert set(data) == {"open", "escalated", "newest", "text", "escalated_text"}
    assert (data["open"], data["escalated"], data["text"]) == (1, 0, ONE)
    body = response.get_data(as_text=True)
    for word in ("MRN", "4471", "nearly", "Nearly every day", "lower the dose", "weakness"):
        assert word not in body
    assert f'"{invitation.visit_id}"' not in body and "visit" not in body


def test_alerts_json_asks_for_a_signed_in_member_of_staff(app, client):
    raise_alert(app)
    assert client.get("/staff/alerts.json").status_code == 401  # not sent to sign in
    patient = Patient(app.test_client())
    patient.open(make_invitation(app, patient_ref="B-2").token)
    assert patient.client.get("/staff/alerts.json").status_code == 401


def test_polling_alerts_does_not_count_as_activity(app, client, clock):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    seen = last_seen(app)
    for _ in range(15):
        clock.advance(minutes=1)
        assert client.get("/staff/alerts.json").status_code == 200
        assert last_seen(app) == seen
    clock.advance(minutes=1)  # 16 minutes with nothing but polling: signed out
    assert client.get("/staff/alerts.json").status_code == 401


# --- never on the patient's side or before sign-in ------------------------------------------


def test_patient_pages_and_the_sign_in_page_carry_none_of_it(app, client, db):
    storage.save_settings(db, {"alert_sound": True})
    raise_alert(app)
    invitation = make_invitation(app, patient_ref="B-3")
    patient = Patient(app.test_client())
    pages = [
        patient.client.get("/start"),
        patient.open(invitation.token),
        patient.start(invitation.token),
        client.get("/staff/login"),
    ]
    for response in pages:
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "alerts.js" not in html and "staff-alerts" not in html and "data-sound" not in html
        assert "safety alert" not in html.lower()
        assert not TITLE.search(html).group(1).startswith("(")
        assert FAVICON.search(html).group(1) == PLAIN


def test_the_notification_button_is_offered_on_the_board(app, admin):
    html = shown(admin, "/staff/").html
    button = re.search(r'<p id="alert-notify"[^>]*>(.*?)</p>', html, re.S)
    assert button and "hidden" in button.group(0).split(">")[0]  # shown by the script
    assert "Show a desktop notification for new alerts" in button.group(1)
    assert 'data-board="1"' in html
    assert 'data-notify-text="Safety alert at the front desk"' in html
    assert 'data-board="1"' not in shown(admin, "/staff/account").html


# --- the sound setting ---------------------------------------------------------------------


class _Form(HTMLParser):
    """The settings form's fields as a browser would send them, unchanged."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def _add(self, name, value):
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._add(a["name"], a.get("value", "y"))
            elif kind not in ("submit", "button"):
                self._add(a["name"], a.get("value", ""))
        elif tag == "textarea":
            self._textarea = a["name"]
            self._add(self._textarea, "")
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self._add(self._select, a.get("value", ""))

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][-1] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def settings_form(html: str) -> dict[str, list[str]]:
    form = html.split('<form method="post" class="narrow"', 1)[1].split("</form>", 1)[0]
    parser = _Form()
    parser.feed("<form " + form)
    return parser.data


def test_the_sound_is_off_by_default_and_an_admin_turns_it_on(app, admin, db):
    page = admin.get("/staff/admin/settings").get_data(as_text=True)
    assert "Play a sound on staff pages when a safety alert arrives" in page
    form = settings_form(page)
    assert "alert_sound" not in form  # unticked
    assert 'id="alert_sound"' in page
    raise_alert(app)
    assert "data-sound" not in shown(admin, "/staff/").html

    form["alert_sound"] = ["y"]
    response = admin.post("/staff/admin/settings", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert storage.get_settings(db)["alert_sound"] is True
    entry = db.query(
        "SELECT detail FROM audit_log WHERE action = 'settings_changed' ORDER BY id DESC"
    )
    assert next(entry)["detail"] == "alert_sound"  # saved and audited together
    page = admin.get("/staff/admin/settings").get_data(as_text=True)
    assert settings_form(page)["alert_sound"] == ["y"]
    for path in ("/staff/", "/staff/invitations/new", "/staff/account"):
        assert 'data-sound="1"' in shown(admin, path).html, path

    form = settings_form(page)
    del form["alert_sound"]  # and off again
    form["csrf_token"] = [csrf_from(page)]
    assert admin.post("/staff/admin/settings", data=form).status_code == 302
    assert storage.get_settings(db)["alert_sound"] is False
    assert "data-sound" not in shown(admin, "/staff/").html


def test_the_escalation_minutes_are_a_setting_the_admin_changes(app, client, clock):
    """Settings, "Minutes before an unacknowledged safety alert is escalated": 5 by
    default; set to 10, an alert 6 minutes old is not escalated yet."""
    from tests.conftest import create_user, csrf_from, login

    create_user(app, "admin@example.org", "admin")
    login(client, "admin@example.org")
    page = client.get("/staff/admin/settings").get_data(as_text=True)
    assert 'name="escalate_after_minutes"' in page and 'value="5"' in page
    form = {
        "csrf_token": csrf_from(page),
        "clinic_name": "Riverside",
        "languages": ["en"],
        "invite_extra_days": "0",
        "patient_idle_minutes": "20",
        "retention_days": "365",
        "escalate_after_minutes": "10",
    }
    assert client.post("/staff/admin/settings", data=form).status_code == 302
    from patientapp.db import storage
    from patientapp.web.context import get_db

    with app.app_context():
        assert storage.get_settings(get_db())["escalate_after_minutes"] == 10


def test_an_alert_says_the_day_the_answer_was_given(app, admin, clock):
    """Found on a walk: an alert from a patient answering on the evening before the
    appointment (the e-mailed link) read "at 9:00 AM (Nov 26, 2026)", a time still to
    come; one from a visit answered days after its appointment showed that old day."""
    from datetime import timedelta

    invitation = make_invitation(app, "EVE-1", when=clock() + timedelta(days=1))
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 11):
        answers = {"S1": "nearly_every_day"} if number == 10 else FULL_ANSWERS.get(number, {})
        patient.post(f"/step/{number}", {"action": "next", **answers})
    board = plain(admin.get("/staff/").get_data(as_text=True))
    assert (
        "EVE-1 — gave a worrying answer to the safety question at 9:00 AM (Nov 25, 2026)." in board
    )
    alert = admin.get("/staff/board.json").get_json()["alerts"][0]
    assert (alert["at"], alert["day"]) == ("9:00\u202fAM", "Nov 25, 2026")
    # The one page, headed with the visit's day (Nov 26), dates that answer too.
    patient.post("/review", {"action": "submit"})
    page = plain(admin.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True))
    assert "answered “Nearly every day” at 9:00 AM (Nov 25, 2026) to thoughts" in page, page

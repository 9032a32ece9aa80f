"""The bar of an escalated alert says what was done, never just "escalated": on every staff
page and in /staff/alerts.json, an alert nobody acknowledged within the Settings minutes
reads "the on-call address was e-mailed at 9:05 AM" once the server's loop sent it (to a
real SMTP server on loopback), "the e-mail to the on-call address failed; phone them" while
the relay is down and the loop retries, "no on-call e-mail is set up" on the default
install, and "the on-call e-mail is not sent yet" before the loop's next pass. With several
escalated alerts the worst state is named. alerts.json also carries `newest`, an opaque
marker of the newest open alert, that moves on when a new alert arrives while another is
acknowledged (the count unchanged)."""

from __future__ import annotations

import html as html_lib
import re
import socket

import pytest
from aiosmtpd.controller import Controller

from patientapp.db import storage
from patientapp.domain import escalation
from patientapp.web.context import base_url
from tests.conftest import FULL_ANSWERS, create_user, finish_visit, login, staff_post

SENDER = "alerts@clinic.example"
ONCALL = "oncall@clinic.example"
ONE = "1 safety alert at the front desk"
SENT = "Not acknowledged for 5 minutes: the on-call address was e-mailed at 9:05\u202fAM"
FAILED = "Not acknowledged for 5 minutes: the e-mail to the on-call address failed; phone them"
UNSET = "Not acknowledged for 5 minutes: no on-call e-mail is set up"
PENDING = "Not acknowledged for 5 minutes: the on-call e-mail is not sent yet"
BAR = re.compile(r'<div id="alert-bar" class="([^"]*)"( hidden)?>(.*?)</div>', re.S)
PAGES = ("/staff/", "/staff/invitations/new", "/staff/account")


def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        self.messages.append(envelope)
        return "250 2.0.0 Ok: queued as TEST1"


@pytest.fixture
def relay():
    """A real SMTP server on 127.0.0.1 for one test."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.inbox = inbox
    yield controller
    controller.stop()


def use_relay(db, port: int) -> None:
    """Outgoing mail as the admin's page saves it: relay, sender and on-call address."""
    storage.save_settings(
        db,
        {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "mail_from": SENDER,
            "oncall_address": ONCALL,
        },
    )


@pytest.fixture
def desk(app):
    create_user(app, "desk@example.org", "frontdesk")
    client = app.test_client()
    assert login(client, "desk@example.org").status_code == 302
    return client


def raise_alert(app, ref: str):
    answers = dict(FULL_ANSWERS)
    answers[10] = {"S1": "nearly_every_day"}
    return finish_visit(app, answers, ref=ref)


def run_pass(app, clock) -> escalation.PassResult:
    """The escalation loop's one pass, as the server's thread runs it."""
    return escalation.check(app, clock, base_url)


def bar(client, path: str) -> tuple[str, str]:
    """The bar's class and its words as the page is served (hidden links left out)."""
    page = client.get(path)
    assert page.status_code == 200, path
    found = BAR.search(page.get_data(as_text=True))
    assert found and not found.group(2), f"no bar on {path}"
    inner = re.sub(r"<a [^>]*hidden[^>]*>.*?</a>", "", found.group(3), flags=re.S)
    words = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", inner)).split())
    return found.group(1), words


def says(client, words: str) -> None:
    """Every staff page's bar, and alerts.json, say `words` of the escalated alert."""
    spaced = " ".join(words.split())  # the page's words, as bar() spaces them
    for path in PAGES:
        css, text = bar(client, path)
        assert "escalated" in css.split(), path
        assert text.startswith(f"{ONE} {spaced}"), (path, text)
        assert not text.rstrip().endswith(": escalated"), (path, text)
    data = client.get("/staff/alerts.json").get_json()
    assert data["escalated"] >= 1 and data["escalated_text"] == words, data


# --- what happened to the e-mail -----------------------------------------------------------


def test_the_bar_names_the_time_the_oncall_address_was_emailed(app, desk, relay, clock, db):
    use_relay(db, relay.port)
    raise_alert(app, "ALERT-1")
    clock.advance(minutes=5)
    assert len(run_pass(app, clock).sent) == 1
    assert len(relay.inbox.messages) == 1
    clock.advance(minutes=2)
    says(desk, SENT)


def test_a_failed_email_says_so_and_asks_for_a_phone_call(app, desk, clock, db):
    use_relay(db, free_port())  # nothing listens there: the relay is down
    raise_alert(app, "ALERT-1")
    clock.advance(minutes=5)
    result = run_pass(app, clock)
    assert result.failed and not result.sent
    says(desk, FAILED)
    clock.advance(minutes=3)  # retried with backoff, still down: still failed
    assert run_pass(app, clock).failed
    says(desk, FAILED)


def test_without_outgoing_mail_the_bar_says_nobody_is_emailed(app, desk, clock):
    raise_alert(app, "ALERT-1")
    clock.advance(minutes=5)
    says(desk, UNSET)  # before the loop's pass
    assert run_pass(app, clock).escalated  # the loop marks it escalated, sends nothing
    says(desk, UNSET)


def test_before_the_loop_sends_the_bar_says_not_sent_yet(app, desk, relay, clock, db):
    use_relay(db, relay.port)
    raise_alert(app, "ALERT-1")
    clock.advance(minutes=5)
    says(desk, PENDING)
    run_pass(app, clock)
    says(desk, SENT)


def test_the_worst_of_several_escalated_alerts_is_named(app, desk, relay, clock, db):
    use_relay(db, relay.port)
    raise_alert(app, "ALERT-1")
    clock.advance(minutes=5)
    assert len(run_pass(app, clock).sent) == 1
    use_relay(db, free_port())  # the relay is gone; a second alert is escalated and fails
    raise_alert(app, "ALERT-2")
    clock.advance(minutes=5)
    assert run_pass(app, clock).failed
    data = desk.get("/staff/alerts.json").get_json()
    assert data["open"] == data["escalated"] == 2
    assert data["escalated_text"] == FAILED


# --- the marker of the newest open alert ---------------------------------------------------


def test_the_newest_marker_moves_on_when_the_count_stays(app, desk, clock):
    assert desk.get("/staff/alerts.json").get_json()["newest"] == 0
    first = raise_alert(app, "ALERT-1")
    data = desk.get("/staff/alerts.json").get_json()
    assert data["open"] == 1 and data["newest"] > 0
    marker = data["newest"]
    # The first is acknowledged elsewhere and a second arrives within one poll.
    staff_post(desk, f"/staff/visits/{first.visit_id}/acknowledge")
    raise_alert(app, "ALERT-2")
    data = desk.get("/staff/alerts.json").get_json()
    assert data["open"] == 1 and data["newest"] > marker
    # Served into every page for the script's first comparison, never who.
    page = desk.get("/staff/account").get_data(as_text=True)
    assert f'data-newest="{data["newest"]}"' in page
    assert "ALERT-2" not in desk.get("/staff/alerts.json").get_data(as_text=True)


def test_an_alert_opened_again_counts_as_the_newest(app, desk, clock, db):
    """A worse answer opens an acknowledged alert again (acknowledged_at back to NULL,
    raised anew at that moment, as storage.reopen_alert does): it is counted again, and
    the marker moves on even when another alert is acknowledged in the same poll."""
    first = raise_alert(app, "ALERT-1")
    second = raise_alert(app, "ALERT-2")
    staff_post(desk, f"/staff/visits/{first.visit_id}/acknowledge")
    data = desk.get("/staff/alerts.json").get_json()
    assert data["open"] == 1
    marker = data["newest"]
    clock.advance(minutes=1)
    with storage.write(db):
        db.execute(
            """UPDATE alerts SET acknowledged_at = NULL, acknowledged_by = NULL,
               created_at = ? WHERE visit_id = ?""",
            (storage.stamp(clock()), first.visit_id),
        )
    staff_post(desk, f"/staff/visits/{second.visit_id}/acknowledge")
    data = desk.get("/staff/alerts.json").get_json()
    assert data["open"] == 1 and data["newest"] > marker
    staff_post(desk, f"/staff/visits/{first.visit_id}/acknowledge")
    assert desk.get("/staff/alerts.json").get_json() == {
        "open": 0,
        "escalated": 0,
        "newest": 0,
        "text": "",
        "escalated_text": "",
    }

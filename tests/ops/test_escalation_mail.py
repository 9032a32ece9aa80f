"""Escalation e-mail against a real SMTP server on loopback (aiosmtpd): an alert nobody
acknowledged in time is escalated once and sends one e-mail, without patient detail, to
the on-call address; racing passes send one; a relay that is down is retried with
backoff; the Outgoing mail page saves its settings, keeps the password to itself and
tests the relay."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import sqlite3
import threading
import time
from contextlib import closing
from datetime import datetime
from email import message_from_bytes, policy

import pytest
import waitress
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from patientapp.db import storage
from patientapp.domain import escalation
from patientapp.web.context import base_url
from tests.conftest import (
    FULL_ANSWERS,
    create_user,
    csrf_from,
    finish_visit,
    input_value,
    login,
    staff_post,
)

CLINIC = "Riverside Clinic"
BOARD = "https://reflect.clinic.example/staff/"
SENDER = "alerts@clinic.example"
ONCALL = "oncall@clinic.example"
REF = "ALERT-7731"
RELAY_USER = "relay-user"
RELAY_PASSWORD = "Zeta-pw-9f41-unique"
QUEUED = "250 2.0.0 Ok: queued as TEST1"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps every message it is given; `delay` holds each DATA
    that long first, so a racing second pass finds the first one still sending."""

    def __init__(self, delay: float = 0.0):
        self.messages = []
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append(envelope)
        return QUEUED


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == RELAY_USER.encode() and auth_data.password == RELAY_PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # aiosmtpd then answers 535 itself


class Relay:
    """A real SMTP server on 127.0.0.1 (a port of its own) for one test."""

    def __init__(self, delay: float = 0.0, auth: bool = False):
        self.inbox = Inbox(delay)
        self.port = free_port()
        extra = {"authenticator": authenticator, "auth_require_tls": False} if auth else {}
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **extra)

    @property
    def messages(self):
        return self.inbox.messages


@pytest.fixture
def relays():
    started = []

    def start(**kwargs) -> Relay:
        relay = Relay(**kwargs)
        relay.controller.start()
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.controller.stop()


@pytest.fixture
def relay(relays):
    return relays()


@pytest.fixture
def admin(app, db):
    app.config["BASE_URL"] = "https://reflect.clinic.example"
    storage.save_settings(db, {"clinic_name": CLINIC})
    create_user(app, "boss@example.org", "admin")
    client = app.test_client()
    assert login(client, "boss@example.org").status_code == 302
    return client


def mail_form(**fields) -> dict:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": "25",
        "smtp_security": "none",
        "smtp_user": "",
        "smtp_password": "",
        "mail_from": SENDER,
        "oncall_address": ONCALL,
        **fields,
    }


def save_mail(client, **fields):
    page = client.get("/staff/admin/mail")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    return client.post("/staff/admin/mail", data={"csrf_token": token, **mail_form(**fields)})


def use_relay(client, port: int, **fields) -> None:
    assert save_mail(client, smtp_port=str(port), **fields).status_code == 302


def raise_alert(app, ref=REF):
    answers = dict(FULL_ANSWERS)
    answers[10] = {"S1": "nearly_every_day"}
    return finish_visit(app, answers, ref=ref)


def run_pass(app, clock) -> escalation.PassResult:
    """The loop's one pass, as the server's thread runs it."""
    return escalation.check(app, clock, base_url)


def alert_of(app, visit_id):
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return storage.alert_for(db, visit_id)


def entries(db, action: str) -> list[dict]:
    return storage.audit_entries(db, action=action)


def read(envelope):
    return message_from_bytes(envelope.content, policy=policy.default)


def text_of(message) -> str:
    """The body's words, whatever the line breaks."""
    return " ".join(message.get_content().split())


def answer_texts() -> list[str]:
    """Every answer the patient sent, as typed or as its choice id."""
    texts = ["nearly_every_day", "Nearly every day"]
    for fields in FULL_ANSWERS.values():
        for value in fields.values():
            texts += value if isinstance(value, list) else [value]
    return [text for text in texts if len(text) > 3]


# --- one e-mail per alert ------------------------------------------------------------------


def test_an_unacknowledged_alert_sends_one_mail_without_patient_detail(
    app, admin, relay, clock, db
):
    use_relay(admin, relay.port)
    invitation = raise_alert(app)
    clock.advance(minutes=4, seconds=59)
    assert run_pass(app, clock) == escalation.PassResult()
    assert relay.messages == []
    clock.advance(seconds=1)

    result = run_pass(app, clock)

    assert result.escalated == result.sent == [invitation.visit_id]
    [envelope] = relay.messages
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == [ONCALL]
    message = read(envelope)
    assert message["From"] == SENDER and message["To"] == ONCALL
    assert message["Subject"] == f"Safety alert at {CLINIC} not acknowledged"
    body = text_of(message)
    assert CLINIC in body and BOARD in body
    assert "5 minutes ago" in body and "nobody has acknowledged it" in body
    raw = envelope.content.decode()
    for secret in [REF, f"visits/{invitation.visit_id}", *answer_texts()]:
        assert secret not in raw, secret
    # Once: a second pass sends nothing more.
    clock.advance(minutes=20)
    assert run_pass(app, clock) == escalation.PassResult()
    assert len(relay.messages) == 1
    alert = alert_of(app, invitation.visit_id)
    assert alert.escalated_at == alert.mail_sent_at == datetime(2026, 11, 25, 9, 5)
    assert alert.mail_attempts == 1 and alert.mail_next_at is None and alert.mail_error == ""
    [escalated] = entries(db, "alert_escalated")
    assert escalated["visit_id"] == invitation.visit_id and escalated["actor"] == "escalation"
    assert REF not in escalated["detail"]
    [sent] = entries(db, "escalation_mail_sent")
    assert sent["visit_id"] == invitation.visit_id
    assert sent["detail"] == f"to {ONCALL}, attempt 1: {QUEUED}"


def test_without_mail_settings_the_alert_is_escalated_and_nothing_is_sent(app, admin, clock, db):
    invitation = raise_alert(app)
    clock.advance(minutes=6)
    result = run_pass(app, clock)
    assert result.escalated == [invitation.visit_id] and result.sent == result.failed == []
    alert = alert_of(app, invitation.visit_id)
    assert alert.escalated_at is not None and alert.mail_attempts == 0
    assert run_pass(app, clock) == escalation.PassResult()  # marked once
    assert len(entries(db, "alert_escalated")) == 1


def test_the_limit_comes_from_settings(app, admin, relay, clock, db):
    storage.save_settings(db, {"escalate_after_minutes": 10})
    use_relay(admin, relay.port)
    raise_alert(app)
    clock.advance(minutes=9)
    assert run_pass(app, clock) == escalation.PassResult()
    clock.advance(minutes=1)
    assert len(run_pass(app, clock).sent) == 1
    assert "10 minutes ago" in text_of(read(relay.messages[0]))


def test_an_acknowledged_alert_sends_nothing(app, admin, relay, clock, db):
    use_relay(admin, relay.port)
    invitation = raise_alert(app)
    clock.advance(minutes=3)
    staff_post(admin, f"/staff/visits/{invitation.visit_id}/acknowledge")
    clock.advance(minutes=30)
    assert run_pass(app, clock) == escalation.PassResult()
    assert relay.messages == []
    assert alert_of(app, invitation.visit_id).escalated_at is None
    assert entries(db, "alert_escalated") == []


def test_two_racing_passes_send_one_mail(app, admin, relays, clock, db):
    slow = relays(delay=0.5)  # the first pass is still sending when the second looks
    use_relay(admin, slow.port)
    invitation = raise_alert(app)
    clock.advance(minutes=5)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def one_pass():
        barrier.wait()
        try:
            results.append(run_pass(app, clock))
        except Exception as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(slow.messages) == 1
    assert sorted(len(result.sent) for result in results) == [0, 1]
    assert sorted(len(result.escalated) for result in results) == [0, 1]
    assert len(entries(db, "alert_escalated")) == 1
    assert len(entries(db, "escalation_mail_sent")) == 1
    assert alert_of(app, invitation.visit_id).mail_attempts == 1


def test_a_send_claimed_by_a_process_that_died_is_tried_after_the_lease(
    app, admin, relay, clock, db
):
    use_relay(admin, relay.port)
    invitation = raise_alert(app)
    clock.advance(minutes=5)
    # Another process escalates the alert, claims its e-mail, and dies before sending.
    escalation.escalate_due(db, clock(), storage.get_settings(db))
    assert escalation.claim_mail(db, clock())[1] == 1
    assert run_pass(app, clock) == escalation.PassResult()
    clock.advance(seconds=escalation.LEASE.total_seconds() - 1)
    assert run_pass(app, clock) == escalation.PassResult()
    assert relay.messages == []
    clock.advance(seconds=1)
    assert run_pass(app, clock).sent == [invitation.visit_id]
    assert len(relay.messages) == 1
    assert alert_of(app, invitation.visit_id).mail_attempts == 2


def test_a_relay_that_is_down_is_retried_with_backoff(app, admin, relay, clock, db):
    use_relay(admin, free_port())  # nothing listens there
    invitation = raise_alert(app)
    clock.advance(minutes=5)

    result = run_pass(app, clock)

    assert result.escalated == result.failed == [invitation.visit_id] and result.sent == []
    alert = alert_of(app, invitation.visit_id)
    assert alert.escalated_at == datetime(2026, 11, 25, 9, 5)
    assert alert.mail_sent_at is None and alert.mail_attempts == 1
    assert alert.mail_next_at == datetime(2026, 11, 25, 9, 6)  # alerts.MAIL_BACKOFF[0]
    assert "Connection refused by 127.0.0.1:" in alert.mail_error
    [failed] = entries(db, "escalation_mail_failed")
    assert failed["visit_id"] == invitation.visit_id and "Connection refused" in failed["detail"]
    # The relay comes back (the admin points at it); nothing is tried before the backoff.
    use_relay(admin, relay.port)
    clock.advance(seconds=59)
    assert run_pass(app, clock) == escalation.PassResult()
    assert alert_of(app, invitation.visit_id).mail_attempts == 1
    clock.advance(seconds=1)
    assert run_pass(app, clock).sent == [invitation.visit_id]
    assert len(relay.messages) == 1
    alert = alert_of(app, invitation.visit_id)
    assert alert.mail_sent_at == datetime(2026, 11, 25, 9, 6) and alert.mail_attempts == 2
    assert alert.mail_error == "" and alert.escalated_at == datetime(2026, 11, 25, 9, 5)
    # The page shows the last e-mail sent and the last failure, each with its time.
    html = admin.get("/staff/admin/mail").get_data(as_text=True)
    assert "Last escalation e-mail sent: 11/25/26, 9:06" in html
    assert f"to {ONCALL}, attempt 2: {QUEUED}" in html
    assert "Last failure: 11/25/26, 9:05" in html and "Connection refused" in html


def test_the_backoff_grows_while_the_relay_stays_down(app, admin, clock):
    use_relay(admin, free_port())
    invitation = raise_alert(app)
    clock.advance(minutes=5)
    waits = []
    for _ in range(6):
        run_pass(app, clock)
        alert = alert_of(app, invitation.visit_id)
        waits.append(int((alert.mail_next_at - clock()).total_seconds()))
        clock.moment = alert.mail_next_at
    assert waits == [60, 120, 300, 600, 900, 900]


def test_no_request_sends_mail(app, admin, relay, clock, monkeypatch):
    """A patient's save and the board never wait for a relay: only the loop sends."""
    use_relay(admin, relay.port)

    def refuse(*args, **kwargs):
        raise AssertionError("a request tried to send mail")

    monkeypatch.setattr(smtplib, "SMTP", refuse)
    invitation = raise_alert(app, ref="LATE-1")
    clock.advance(minutes=6)  # past the limit: only the loop would escalate and send
    assert admin.get("/staff/").status_code == 200
    assert admin.get("/staff/board.json").status_code == 200
    assert alert_of(app, invitation.visit_id).escalated_at is None


# --- the loop runs in the server ---------------------------------------------------------------


def test_serve_runs_the_loop_and_stops_it_with_the_server(app, runner, monkeypatch):
    seen = []
    monkeypatch.setattr(waitress, "serve", lambda app_, **kw: seen.extend(threading.enumerate()))
    assert runner.invoke(args=["serve"]).exit_code == 0
    [loop] = [thread for thread in seen if thread.name == "escalation"]
    loop.join(5)
    assert not loop.is_alive()


def test_the_thread_sends_by_itself(app, admin, relay, clock, monkeypatch):
    use_relay(admin, relay.port)
    raise_alert(app)
    clock.advance(minutes=5)
    monkeypatch.setattr(escalation, "CHECK_SECONDS", 0.05)
    stop = escalation.start(app, clock, base_url)
    try:
        deadline = time.monotonic() + 10
        while not relay.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threading.enumerate():
            if thread.name == "escalation":
                thread.join(5)
    assert len(relay.messages) == 1


# --- the Outgoing mail page ----------------------------------------------------------------------


def test_settings_links_to_the_mail_page(app, admin):
    html = admin.get("/staff/admin/settings").get_data(as_text=True)
    assert 'href="/staff/admin/mail"' in html


def test_mail_settings_are_saved_and_audited_by_key(app, admin, db):
    response = save_mail(admin, smtp_host="smtp.clinic.example", smtp_port="587")
    assert response.status_code == 302 and response.headers["Location"] == "/staff/admin/mail"
    settings = storage.get_settings(db)
    assert settings["smtp_host"] == "smtp.clinic.example"
    assert "smtp_port" not in settings  # 587 is the default: left to follow it
    assert settings["oncall_address"] == ONCALL and settings["smtp_security"] == "none"
    [entry] = entries(db, "mail_settings_changed")
    assert entry["detail"] == "mail_from, oncall_address, smtp_host, smtp_security"
    html = admin.get("/staff/admin/mail").get_data(as_text=True)
    assert "Settings saved." in html
    assert input_value(html, "smtp_host") == "smtp.clinic.example"
    assert input_value(html, "oncall_address") == ONCALL
    # The same again changes nothing and writes nothing.
    save_mail(admin, smtp_host="smtp.clinic.example", smtp_port="587")
    assert len(entries(db, "mail_settings_changed")) == 1


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"smtp_port": "70000"}, "smtp_port", "Please enter a whole number from 1 to 65535."),
        ({"smtp_port": "smtp"}, "smtp_port", "Please enter a whole number from 1 to 65535."),
        ({"smtp_host": "mail server.example"}, "smtp_host", "A host name has no spaces"),
        ({"mail_from": "alerts at clinic"}, "mail_from", "like name@example.org"),
        ({"oncall_address": "oncall@"}, "oncall_address", "like name@example.org"),
        ({"oncall_address": ""}, "oncall_address", "Please enter the on-call address"),
        ({"smtp_security": "ssl3"}, "smtp_security", "Please pick one of the choices shown."),
    ],
)
def test_bad_mail_settings_are_refused_and_what_was_typed_is_kept(
    app, admin, db, fields, field, message
):
    response = save_mail(admin, smtp_user="someone", smtp_password=RELAY_PASSWORD, **fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html.split(f'id="{field}-error">')[1].split("</p>")[0]
    assert "Nothing was saved" in html
    typed = mail_form(smtp_user="someone", **fields)
    for name in ("smtp_host", "smtp_user", "mail_from", "oncall_address"):
        assert input_value(html, name) == typed[name]
    assert RELAY_PASSWORD not in html
    assert entries(db, "mail_settings_changed") == []
    assert "smtp_user" not in storage.get_settings(db)


def test_the_password_is_kept_never_shown_and_can_be_removed(app, admin, relays, db):
    relay = relays(auth=True)
    use_relay(admin, relay.port, smtp_user=RELAY_USER, smtp_password=RELAY_PASSWORD)
    html = admin.get("/staff/admin/mail").get_data(as_text=True)
    assert RELAY_PASSWORD not in html
    assert input_value(html, "smtp_password") in (None, "")
    assert "A password is stored" in html
    # Saved again with the password left empty: the stored one stays, and works.
    use_relay(admin, relay.port, smtp_user=RELAY_USER)
    assert storage.get_settings(db)["smtp_password"] == RELAY_PASSWORD
    response = staff_post(admin, "/staff/admin/mail/test", page="/staff/admin/mail")
    assert response.status_code == 302
    page = admin.get("/staff/admin/mail").get_data(as_text=True)
    assert f"Test message sent to {ONCALL}. The relay answered: {QUEUED}" in page
    assert RELAY_PASSWORD not in page
    # Both at once is refused; the box alone removes it.
    both = save_mail(
        admin,
        smtp_port=str(relay.port),
        smtp_user=RELAY_USER,
        smtp_password="another-one-123",
        remove_password="y",
    )
    assert both.status_code == 422 and "not both" in both.get_data(as_text=True)
    use_relay(admin, relay.port, smtp_user=RELAY_USER, remove_password="y")
    assert storage.get_settings(db)["smtp_password"] == ""
    everything = storage.audit_entries(db, limit=1000)
    assert not any(RELAY_PASSWORD in str(row) for row in everything)
    details = [row["detail"] for row in reversed(entries(db, "mail_settings_changed"))]
    assert details == [
        "mail_from, oncall_address, smtp_host, smtp_password, smtp_port, smtp_security, smtp_user",
        "smtp_password",
    ]


def test_a_wrong_password_shows_the_relays_refusal(app, admin, relays, db):
    relay = relays(auth=True)
    use_relay(admin, relay.port, smtp_user=RELAY_USER, smtp_password="wrong-password-1")
    staff_post(admin, "/staff/admin/mail/test", page="/staff/admin/mail")
    html = admin.get("/staff/admin/mail").get_data(as_text=True)
    assert (
        f"The test message was not sent. Authentication failed at 127.0.0.1:{relay.port}: "
        "535 5.7.8 Authentication credentials invalid"
    ) in html
    assert relay.messages == []
    [entry] = entries(db, "mail_test_failed")
    assert "535 5.7.8" in entry["detail"] and "wrong-password-1" not in entry["detail"]


def test_the_test_button_sends_now_and_reports_the_relays_answer(app, admin, relay, db):
    use_relay(admin, relay.port)
    response = staff_post(admin, "/staff/admin/mail/test", page="/staff/admin/mail")
    assert response.status_code == 302
    html = admin.get("/staff/admin/mail").get_data(as_text=True)
    assert f"Test message sent to {ONCALL}. The relay answered: {QUEUED}" in html
    [envelope] = relay.messages
    assert envelope.rcpt_tos == [ONCALL] and envelope.mail_from == SENDER
    message = read(envelope)
    assert message["Subject"] == f"Test message from {CLINIC}"
    assert BOARD in text_of(message)
    [entry] = entries(db, "mail_test_sent")
    assert entry["detail"] == f"to {ONCALL}: {QUEUED}" and entry["actor"] == "boss@example.org"


def test_the_test_button_reports_a_closed_port(app, admin, db):
    port = free_port()
    use_relay(admin, port)
    staff_post(admin, "/staff/admin/mail/test", page="/staff/admin/mail")
    html = admin.get("/staff/admin/mail").get_data(as_text=True)
    assert (
        f"The test message was not sent. Connection refused by 127.0.0.1:{port}: nothing is "
        "listening there. Check the host and the port."
    ) in html
    [entry] = entries(db, "mail_test_failed")
    assert "Connection refused" in entry["detail"]


def test_the_test_button_reports_a_relay_without_starttls(app, admin, relay):
    use_relay(admin, relay.port, smtp_security="starttls")
    staff_post(admin, "/staff/admin/mail/test", page="/staff/admin/mail")
    html = admin.get("/staff/admin/mail").get_data(as_text=True)
    assert "STARTTLS extension not supported by server." in html
    assert relay.messages == []


def test_the_test_button_without_settings_says_what_is_missing(app, admin, db):
    staff_post(admin, "/staff/admin/mail/test", page="/staff/admin/mail")
    html = admin.get("/staff/admin/mail").get_data(as_text=True)
    assert "Outgoing mail is not set up" in html
    [entry] = entries(db, "mail_test_failed")
    assert entry["detail"] == "not sent: outgoing mail is not set up"


def test_the_mail_page_is_for_admins_only(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    assert client.get("/staff/admin/mail").status_code == 403


def test_mail_settings_and_their_entry_are_one_write(app, admin, db, monkeypatch):
    page = admin.get("/staff/admin/mail").get_data(as_text=True)

    def fail(*_args, **_kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(storage, "audit", fail)
    response = admin.post("/staff/admin/mail", data={"csrf_token": csrf_from(page), **mail_form()})
    assert response.status_code == 503
    assert "smtp_host" not in storage.get_settings(db)


def test_an_escalation_and_its_entry_are_one_write(app, admin, clock, db, monkeypatch):
    invitation = raise_alert(app)
    clock.advance(minutes=5)

    def fail(*_args, **_kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(storage, "audit", fail)
    with pytest.raises(sqlite3.OperationalError):
        run_pass(app, clock)
    assert alert_of(app, invitation.visit_id).escalated_at is None

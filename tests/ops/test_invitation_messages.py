"""Invitations and one reminder by e-mail (a real SMTP server on loopback, aiosmtpd) and
by text (a local HTTP server standing in for the gateway's API), sent by the server's
loop: what the patient receives, the link it carries, the reminder at its minute and
out of quiet hours, the opt-out, the board's row, the contact details erased, and bad
input and broken relays handled without losing anything."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import urllib.parse
from contextlib import closing
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import waitress
from aiosmtpd.controller import Controller
from flask_babel import force_locale, gettext

from patientapp import i18n
from patientapp.db import storage
from patientapp.domain import delivery, visits
from patientapp.questionnaire import timing
from patientapp.web.context import base_url
from tests.conftest import (
    FULL_ANSWERS,
    Patient,
    create_user,
    csrf_from,
    input_value,
    login,
    make_invitation,
)
from tests.ops.test_escalation_mail import CLINIC, SENDER, Inbox, free_port, read, use_relay

BASE = "https://reflect.clinic.example"
PATIENT_EMAIL = "river.patient@mail.example"
PATIENT_PHONE_TYPED = "+1 (555) 201-7788"
PATIENT_PHONE = "+15552017788"
REF = "MSG-4410"
LINK = re.compile(re.escape(BASE) + r"/v/([A-Za-z0-9_-]{20,})")


class RefusingInbox(Inbox):
    """A relay that refuses the patient's address for good (the message bounces)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 <" + address + ">: Recipient address rejected: User unknown"


class Relay:
    def __init__(self, handler, port: int | None = None):
        self.inbox = handler
        self.port = port or free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self):
        return self.inbox.messages


@pytest.fixture
def relay():
    started = Relay(Inbox())
    started.controller.start()
    yield started
    started.controller.stop()


class Gateway:
    """A text gateway's API on loopback: keeps each request, answers `status`."""

    def __init__(self, status: int = 201):
        self.requests: list[dict] = []
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                owner.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length).decode("utf-8"),
                    }
                )
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"sid": "SM1"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/2010-04-01/Messages.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def gateway():
    started = Gateway()
    yield started
    started.server.shutdown()
    started.server.server_close()


@pytest.fixture
def staff(app, db):
    app.config["BASE_URL"] = BASE
    storage.save_settings(db, {"clinic_name": CLINIC})
    create_user(app, "boss@example.org", "admin")
    client = app.test_client()
    assert login(client, "boss@example.org").status_code == 302
    return client


def sign_in_again(client) -> None:
    """After the clock jumped past the staff idle timeout."""
    assert login(client, "boss@example.org").status_code == 302


def run_pass(app, clock) -> delivery.PassResult:
    """The loop's one pass, as the server's thread runs it."""
    return delivery.check(app, clock, base_url)


def new_invitation(client, clock, **fields):
    page = client.get("/staff/invitations/new")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        "patient_ref": REF,
        "day": "2026-11-26",
        "time": "10:00",
        "psychiatrist": "0",
        "language": "",
        **fields,
    }
    return client.post("/staff/invitations/new", data=data)


def visit_id_of(response) -> int:
    return int(re.search(r"/visits/(\d+)/invitation", response.headers["Location"]).group(1))


def save_messages(client, **fields):
    page = client.get("/staff/admin/messages")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        "reminder_hours_before": "24",
        "quiet_from": "21:00",
        "quiet_until": "08:00",
        "sms_mode": "none",
        "sms_email_address": "",
        "sms_http_url": "",
        "sms_http_auth": "",
        "sms_http_content_type": "form",
        "sms_http_body": "",
        "sms_from": "",
        **fields,
    }
    return client.post("/staff/admin/messages", data=data)


def use_gateway(client, gateway: Gateway, **fields) -> None:
    response = save_messages(
        client,
        sms_mode="http",
        sms_http_url=gateway.url,
        sms_http_auth="Authorization: Basic QUMxOnNlY3JldA==",
        sms_http_body="To={to}&From={from}&Body={body}",
        sms_from="+15550001111",
        **fields,
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def board(client, day="2026-11-26") -> str:
    return client.get(f"/staff/?day={day}").get_data(as_text=True)


def entries(db, action: str) -> list[dict]:
    return storage.audit_entries(db, action=action)


def words(text: str) -> str:
    return " ".join(text.split())


# --- the invitation by e-mail ---------------------------------------------------------------


def test_the_email_promises_the_minutes_with_the_measures_it_includes(app, staff, relay, clock):
    """An invitation with PHQ-9 and GAD-7: the e-mail the relay receives promises the
    minutes of the reflection and both measures, as the welcome page does."""
    from patientapp.questionnaire import model

    use_relay(staff, relay.port)
    response = new_invitation(staff, clock, email=PATIENT_EMAIL, measures=["gad7", "phq9"])
    assert response.status_code == 302
    run_pass(app, clock)
    [envelope] = relay.messages
    body = words(read(envelope).get_content())
    both = timing.promised_minutes("en", model.default().instruments)
    assert both > timing.promised_minutes("en")
    assert f"It takes about {both} minutes" in body


def test_the_link_reaches_the_patient_by_email_and_opens_the_visit(app, staff, relay, clock, db):
    use_relay(staff, relay.port)
    response = new_invitation(staff, clock, email=PATIENT_EMAIL)
    assert response.status_code == 302
    visit_id = visit_id_of(response)
    assert relay.messages == []  # no request sends: the loop does

    result = run_pass(app, clock)

    [envelope] = relay.messages
    assert envelope.rcpt_tos == [PATIENT_EMAIL]
    message = read(envelope)
    assert message["To"] == PATIENT_EMAIL and message["From"] == f"{CLINIC} <{SENDER}>"
    assert message["Subject"] == f"Before your visit at {CLINIC}"
    body = words(message.get_content())
    assert "Thursday, November 26, 2026 at 10:00 AM" in body
    # The minutes the welcome page promises, as measured (bench/screens.py --write).
    assert f"about {timing.promised_minutes('en')} minutes" in body
    assert REF not in message.as_string()  # the chart reference never leaves
    assert "psychiatrist" not in body.lower()
    [token] = set(LINK.findall(body))
    assert f"{BASE}/v/{token}/stop" in body
    assert len(result.sent) == 1

    # The patient taps the link: it opens their own visit.
    patient = Patient(app.test_client())
    page = patient.open(token)
    assert page.status_code == 200
    assert "Before your visit" in page.get_data(as_text=True)

    row = board(staff)
    assert "E-mail sent" in row and "link opened 9:00\u202fAM" in row
    invitation_page = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True)
    assert "Invitation by e-mail: sent" in invitation_page
    assert "The patient opened the link from a message" in invitation_page
    # Audited by kind and channel, never the address.
    [sent] = entries(db, "message_sent")
    assert sent["visit_id"] == visit_id and "invitation by email, attempt 1: 250" in sent["detail"]
    every_entry = json.dumps(storage.audit_entries(db, limit=500))
    assert PATIENT_EMAIL not in every_entry


def test_the_message_comes_in_the_invitations_language(app, staff, relay, clock):
    use_relay(staff, relay.port)
    assert new_invitation(staff, clock, email=PATIENT_EMAIL, language="es").status_code == 302
    run_pass(app, clock)
    [envelope] = relay.messages
    message = read(envelope)
    with app.test_request_context(), force_locale("es"):
        subject = gettext("Before your visit at %(clinic)s", clinic=CLINIC)
    assert subject != f"Before your visit at {CLINIC}"  # the Spanish catalog has it
    assert message["Subject"] == subject
    assert "jueves" in message.get_content()
    # What a mail reader shows and acts on: the clinic's name beside the sender (the
    # subject names it already), the language, and its "Unsubscribe" on the stop link.
    assert message["From"].addresses[0].display_name == CLINIC
    assert message["From"].addresses[0].addr_spec == SENDER
    assert message["Content-Language"] == "es"
    stop = re.search(r"\S+/stop", message.get_content()).group(0)
    assert message["List-Unsubscribe"] == f"<{stop}>"
    assert f"\r\nList-Unsubscribe: <{stop}>\r\n".encode() in envelope.content  # as sent


def test_the_reminder_leaves_at_its_minute_and_not_again(app, staff, relay, clock, db):
    use_relay(staff, relay.port)
    new_invitation(staff, clock, email=PATIENT_EMAIL)
    run_pass(app, clock)
    assert len(relay.messages) == 1
    clock.advance(minutes=59, seconds=59)  # the reminder is due at 10:00, 24 hours before
    assert run_pass(app, clock).sent == []
    clock.advance(seconds=1)

    assert len(run_pass(app, clock).sent) == 1

    reminder = read(relay.messages[1])
    assert reminder["Subject"] == f"Reminder: your visit at {CLINIC}"
    assert "This is a reminder of your visit" in words(reminder.get_content())
    clock.advance(hours=3)
    assert run_pass(app, clock).sent == [] and len(relay.messages) == 2


def test_a_patient_who_started_and_did_not_send_is_reminded_to_finish(
    app, staff, relay, gateway, clock, db
):
    """Found on a walk: a patient stopped at the review got "If you have not answered the
    questions before your visit yet, you can do it now. It takes about 9 minutes." The
    reminder, by e-mail and by text, now says they started and may finish."""
    use_relay(staff, relay.port)
    use_gateway(staff, gateway)
    response = new_invitation(staff, clock, email=PATIENT_EMAIL, phone=PATIENT_PHONE_TYPED)
    visit_id = visit_id_of(response)
    run_pass(app, clock)
    assert len(relay.messages) == 1 and len(gateway.requests) == 1
    link = re.search(r"/v/\S+", words(read(relay.messages[0]).get_content())).group(0)
    patient = Patient(app.test_client())
    patient.start(link.removeprefix("/v/"))
    patient.post("/step/1", {"action": "next", "T2": "the dose"})
    assert storage.get_visit(db, visit_id).status == visits.IN_PROGRESS
    clock.advance(hours=1)  # the reminder is due at 10:00, 24 hours before
    assert len(run_pass(app, clock).sent) == 2

    body = words(read(relay.messages[1]).get_content())
    assert (
        "You started the questions but have not sent them yet. Your answers so far are "
        "saved: you can finish and send them now." in body
    )
    assert "Open this link to go on:" in body and "If you have not answered" not in body
    text = urllib.parse.parse_qs(gateway.requests[1]["body"])["Body"][0]
    assert "You started the questions but have not sent them yet. To finish:" in text


def test_a_patient_who_only_pressed_start_gets_the_plain_reminder(
    app, staff, relay, gateway, clock, db
):
    """Pressing Start and leaving on the first screen saves no answer: the reminder must
    not say "Your answers so far are saved", and asks as for one who never opened it."""
    use_relay(staff, relay.port)
    use_gateway(staff, gateway)
    response = new_invitation(staff, clock, email=PATIENT_EMAIL, phone=PATIENT_PHONE_TYPED)
    visit_id = visit_id_of(response)
    run_pass(app, clock)
    link = re.search(r"/v/\S+", words(read(relay.messages[0]).get_content())).group(0)
    Patient(app.test_client()).start(link.removeprefix("/v/"))
    assert storage.get_visit(db, visit_id).status == visits.IN_PROGRESS
    clock.advance(hours=1)
    assert len(run_pass(app, clock).sent) == 2

    body = words(read(relay.messages[1]).get_content())
    assert "so far are saved" not in body and "You started" not in body
    assert "If you have not answered the questions before your visit yet" in body
    assert "Open this link to start:" in body
    text = urllib.parse.parse_qs(gateway.requests[1]["body"])["Body"][0]
    assert "You started" not in text and "please answer a few questions before it" in text


def test_quiet_hours_hold_a_message_until_they_end(app, staff, relay, clock, db):
    use_relay(staff, relay.port)
    clock.moment = datetime(2026, 11, 25, 22, 30)
    sign_in_again(staff)
    assert new_invitation(staff, clock, email=PATIENT_EMAIL).status_code == 302
    assert run_pass(app, clock).sent == [] and relay.messages == []
    clock.moment = datetime(2026, 11, 26, 7, 59)
    assert run_pass(app, clock).sent == []
    clock.moment = datetime(2026, 11, 26, 8, 0)
    assert len(run_pass(app, clock).sent) == 1


def test_the_reminder_time_leaves_quiet_hours_before_the_appointment():
    settings = {"reminder_hours_before": 3, "quiet_from": "21:00", "quiet_until": "08:00"}
    now = datetime(2026, 11, 20, 12, 0)
    # 10:00 - 3 h = 07:00 (quiet): moved to 08:00, still before the appointment.
    assert delivery.reminder_time(settings, datetime(2026, 11, 26, 10, 0), now) == datetime(
        2026, 11, 26, 8, 0
    )
    # 07:30 - 3 h = 04:30 (quiet), and 08:00 is too late: the evening before, 20:59.
    assert delivery.reminder_time(settings, datetime(2026, 11, 26, 7, 30), now) == datetime(
        2026, 11, 25, 20, 59
    )
    assert delivery.reminder_time(settings, datetime(2026, 11, 26, 15, 0), now) == datetime(
        2026, 11, 26, 12, 0
    )
    assert delivery.reminder_time({**settings, "reminder_hours_before": 0}, now, now) is None
    # Already past: only the invitation goes.
    assert delivery.reminder_time(settings, datetime(2026, 11, 20, 14, 0), now) is None


# --- the patient's own say ------------------------------------------------------------------


def test_the_patient_stops_further_messages_and_their_address_is_erased(
    app, staff, relay, clock, db
):
    use_relay(staff, relay.port)
    visit_id = visit_id_of(new_invitation(staff, clock, email=PATIENT_EMAIL))
    run_pass(app, clock)
    [token] = set(LINK.findall(words(read(relay.messages[0]).get_content())))
    phone = app.test_client()

    page = phone.get(f"/v/{token}/stop")  # a mail scanner's GET changes nothing
    assert page.status_code == 200 and "Stop messages" in page.get_data(as_text=True)
    assert storage.contact(db, visit_id)["email"] == PATIENT_EMAIL
    stopped = phone.post(
        f"/v/{token}/stop", data={"csrf_token": csrf_from(page.get_data(as_text=True))}
    )

    assert "We will not send you any more" in stopped.get_data(as_text=True)
    assert storage.contact(db, visit_id)["email"] == ""
    clock.advance(hours=2)
    run_pass(app, clock)
    assert len(relay.messages) == 1  # no reminder
    sign_in_again(staff)
    page = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True)
    assert "The patient asked for no more messages about this visit." in page
    assert "Reminder by e-mail: not sent: no longer needed" in page
    assert len(entries(db, "messages_opted_out")) == 1


def test_contact_details_are_erased_from_the_file_once_the_answers_are_sent(
    app, staff, relay, clock, db
):
    use_relay(staff, relay.port)
    visit_id = visit_id_of(new_invitation(staff, clock, email=PATIENT_EMAIL))
    run_pass(app, clock)
    [token] = set(LINK.findall(words(read(relay.messages[0]).get_content())))
    patient = Patient(app.test_client())
    patient.start(token)
    for number in range(1, 11):
        patient.post(f"/step/{number}", {"action": "next", **FULL_ANSWERS.get(number, {})})
    patient.post("/review", {"action": "submit"})

    result = run_pass(app, clock)

    assert result.erased == [visit_id]
    assert storage.contact(db, visit_id) is None
    database = Path(app.config["DATABASE"])
    for path in (database, database.with_name(database.name + "-wal")):
        if path.exists():
            assert PATIENT_EMAIL.encode() not in path.read_bytes(), path
    assert [e["visit_id"] for e in entries(db, "contact_erased")] == [visit_id]


def test_a_cancelled_invitation_sends_nothing_more(app, staff, relay, clock, db):
    use_relay(staff, relay.port)
    visit_id = visit_id_of(new_invitation(staff, clock, email=PATIENT_EMAIL))
    page = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True)
    staff.post(f"/staff/visits/{visit_id}/cancel", data={"csrf_token": csrf_from(page)})
    result = run_pass(app, clock)
    assert relay.messages == [] and result.erased == [visit_id]


# --- text messages ------------------------------------------------------------------------


def test_the_link_goes_by_text_through_the_gateways_api(app, staff, gateway, clock, db):
    use_gateway(staff, gateway)
    visit_id = visit_id_of(new_invitation(staff, clock, phone=PATIENT_PHONE_TYPED))

    run_pass(app, clock)

    [request] = gateway.requests
    assert request["path"] == "/2010-04-01/Messages.json"
    assert request["headers"]["Authorization"] == "Basic QUMxOnNlY3JldA=="
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = urllib.parse.parse_qs(request["body"])
    assert form["To"] == [PATIENT_PHONE] and form["From"] == ["+15550001111"]
    text = form["Body"][0]
    assert text.startswith(f"{CLINIC}: before your visit on Nov 26, 2026 at 10:00\u202fAM")
    [token] = set(LINK.findall(text))
    assert f"/v/{token}/stop" in text and len(text) < 320
    assert "Text sent" in board(staff)
    assert storage.contact(db, visit_id)["phone"] == PATIENT_PHONE
    assert PATIENT_PHONE not in json.dumps(storage.audit_entries(db, limit=500))


@pytest.mark.parametrize("by", ["email", "text"])
def test_messages_give_the_clinic_the_name_set_for_them(app, staff, relay, gateway, clock, db, by):
    """From a walk: a clinic named "Riverside Psychiatry" put that word on every patient's
    locked phone, in the sender, the subject and the text's first words."""
    storage.save_settings(db, {"clinic_name": "Riverside Psychiatry"})
    neutral = {"message_clinic_name": "  Riverside Health  "}
    if by == "email":
        use_relay(staff, relay.port)
        assert save_messages(staff, **neutral).status_code == 302
        assert new_invitation(staff, clock, email=PATIENT_EMAIL).status_code == 302
    else:
        use_gateway(staff, gateway, **neutral)
        assert new_invitation(staff, clock, phone=PATIENT_PHONE_TYPED).status_code == 302
    assert storage.get_settings(db)["message_clinic_name"] == "Riverside Health"
    page = staff.get("/staff/admin/messages").get_data(as_text=True)
    assert 'value="Riverside Health"' in page and "does not say what kind of care" in page

    run_pass(app, clock)

    if by == "email":
        [envelope] = relay.messages
        message = read(envelope)
        assert message["From"] == f"Riverside Health <{SENDER}>"
        assert message["Subject"] == "Before your visit at Riverside Health"
        seen = message.as_string()
    else:
        [request] = gateway.requests
        seen = urllib.parse.parse_qs(request["body"])["Body"][0]
        assert seen.startswith("Riverside Health: before your visit on Nov 26, 2026")
    assert "Psychiatry" not in seen
    # The staff pages keep the clinic's own name.
    assert "Riverside Psychiatry" in staff.get("/staff/").get_data(as_text=True)


@pytest.mark.parametrize("language", i18n.available_languages())
def test_every_text_stays_under_320_characters(app, db, language):
    """README's promise, for each kind of text in each language, with the clinic's name
    and a link as long as a real one (two or three SMS segments at most)."""
    invitation = make_invitation(app, measures=("gad7", "phq9"), language=language)
    invited = storage.get_visit(db, invitation.visit_id)
    started = dataclasses.replace(invited, status=visits.IN_PROGRESS, furthest_step=2)
    link = BASE + delivery.LINK_PATH + "x" * 43  # 256 bits in base64url
    after = invited.appointment_at + timedelta(minutes=1)
    for kind, visit, moment in (
        (delivery.INVITATION, invited, None),
        (delivery.INVITATION, invited, after),  # sent in the extra days after the visit
        (delivery.REMINDER, invited, None),
        (delivery.REMINDER, started, None),
    ):
        with app.test_request_context(), force_locale(language):
            text = delivery.compose(
                kind,
                delivery.SMS,
                clinic=CLINIC,
                visit=visit,
                link=link,
                stop=link + delivery.STOP_SUFFIX,
                now=moment,
            ).body
        assert len(text) < 320, (kind, visit.status, moment, len(text), text)


# How each language names the psychiatrist or psychiatry (README: a phone's lock screen
# shows a message to anyone nearby, so no message says it).
PSYCHIATRY = {
    "en": "psychiatr",
    "es": "psiquiatr",
    "fr": "psychiatr",
    "pt_BR": "psiquiatr",
    "vi": "tâm thần",
    "zh_Hans": "精神",
    "ar": "النفسي",
}


@pytest.mark.parametrize("language", i18n.available_languages())
def test_no_message_names_the_psychiatrist_in_any_language(app, db, language):
    """Every kind of e-mail and text, in every language: subject and body."""
    invitation = make_invitation(app, language=language)
    invited = storage.get_visit(db, invitation.visit_id)
    started = dataclasses.replace(invited, status=visits.IN_PROGRESS, furthest_step=2)
    after = invited.appointment_at + timedelta(minutes=1)
    link = BASE + delivery.LINK_PATH + "x" * 43
    for channel in (delivery.EMAIL, delivery.SMS):
        for kind, visit, moment in (
            (delivery.INVITATION, invited, None),
            (delivery.INVITATION, invited, after),
            (delivery.REMINDER, invited, None),
            (delivery.REMINDER, started, None),
        ):
            with app.test_request_context(), force_locale(language):
                words = delivery.compose(
                    kind,
                    channel,
                    clinic=CLINIC,
                    visit=visit,
                    link=link,
                    stop=link + delivery.STOP_SUFFIX,
                    now=moment,
                )
            said = (words.subject + " " + words.body).lower()
            assert PSYCHIATRY[language] not in said, (channel, kind, moment, said)


def test_a_gateway_that_refuses_the_number_shows_on_the_row(app, staff, gateway, clock, db):
    gateway.status = 400
    use_gateway(staff, gateway)
    visit_id = visit_id_of(new_invitation(staff, clock, phone=PATIENT_PHONE_TYPED))
    result = run_pass(app, clock)
    assert len(result.failed) == 1  # a 4xx is for good: not tried again
    assert "Text failed" in board(staff)
    page = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True)
    assert "Invitation by text: not delivered:" in page
    assert PATIENT_PHONE not in page


# --- relays that fail ---------------------------------------------------------------------


def test_a_bounced_address_shows_on_the_row_without_the_address(app, staff, clock, db):
    bouncing = Relay(RefusingInbox())
    bouncing.controller.start()
    try:
        use_relay(staff, bouncing.port)
        visit_id = visit_id_of(new_invitation(staff, clock, email=PATIENT_EMAIL))
        result = run_pass(app, clock)
    finally:
        bouncing.controller.stop()
    assert len(result.failed) == 1
    page = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True)
    assert "refused the patient&#39;s address: 550 5.1.1" in page
    assert PATIENT_EMAIL not in page
    assert "E-mail failed" in board(staff)
    assert PATIENT_EMAIL not in json.dumps(storage.audit_entries(db, limit=500))


class EchoingInbox(Inbox):
    """A relay that names the recipient back, in capitals, as some do: refusing the
    address when `refuse`, else in its "queued" answer."""

    def __init__(self, refuse: bool):
        super().__init__()
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return f"550 5.1.1 mailbox {address.partition('@')[0].upper()} unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return f"250 2.0.0 Ok: queued as X1 for <{envelope.rcpt_tos[0].upper()}>"


def spellings(contact: str) -> list[str]:
    """The contact, its mailbox name and its digits, in lower case."""
    local = contact.partition("@")[0]
    return [s.lower() for s in (contact, local, local.lstrip("+")) if len(s) >= 3]


@pytest.mark.parametrize("refuse", [False, True], ids=["queued", "refused"])
@pytest.mark.parametrize("by", ["email", "text by e-mail"])
def test_a_relay_naming_the_patient_back_leaves_no_contact_anywhere(
    app, staff, clock, db, refuse, by
):
    echoing = Relay(EchoingInbox(refuse))
    echoing.controller.start()
    try:
        use_relay(staff, echoing.port)
        if by == "email":
            fields, contact = {"email": "River.Patient@Mail.Example"}, "River.Patient@Mail.Example"
        else:
            response = save_messages(
                staff, sms_mode="email", sms_email_address="{number}@sms.example"
            )
            assert response.status_code == 302, response.get_data(as_text=True)
            fields, contact = {"phone": PATIENT_PHONE_TYPED}, f"{PATIENT_PHONE[1:]}@sms.example"
        visit_id = visit_id_of(new_invitation(staff, clock, **fields))
        result = run_pass(app, clock)
    finally:
        echoing.controller.stop()
    assert len(result.failed if refuse else result.sent) == 1
    if not refuse:
        assert echoing.messages[0].rcpt_tos == [contact]  # it went to the patient
    page = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True).lower()
    with closing(storage.connect(app.config["DATABASE"])) as check:
        kept = {
            table: repr(check.execute(f"SELECT * FROM {table}").fetchall()).lower()
            for table in ("messages", "audit_log")
        }
    for spelling in spellings(contact):
        assert spelling not in page, spelling
        for table, rows in kept.items():
            assert spelling not in rows, (table, spelling)
    assert "250 2.0.0" in kept["audit_log"] or "550 5.1.1" in kept["audit_log"]


def test_a_relay_that_is_down_never_blocks_and_is_retried(app, staff, clock, db):
    port = free_port()  # nothing listens there yet
    use_relay(staff, port)
    response = new_invitation(staff, clock, email=PATIENT_EMAIL)
    assert response.status_code == 302  # the board and the front desk carry on
    visit_id = visit_id_of(response)
    result = run_pass(app, clock)
    assert len(result.retrying) == 1 and result.failed == []
    page = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True)
    assert "not sent yet, trying again at" in page and "Connection refused" in page
    assert "E-mail retrying" in board(staff)
    relay = Relay(Inbox(), port)
    relay.controller.start()
    try:
        clock.advance(seconds=30)
        assert run_pass(app, clock).sent == []  # the backoff is not over
        clock.advance(minutes=2)
        assert len(run_pass(app, clock).sent) == 1 and len(relay.messages) == 1
    finally:
        relay.controller.stop()


def test_two_racing_passes_send_one_message(app, staff, clock, db):
    slow = Relay(Inbox(delay=0.5))
    slow.controller.start()
    try:
        use_relay(staff, slow.port)
        new_invitation(staff, clock, email=PATIENT_EMAIL)
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(run_pass(app, clock))) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        slow.controller.stop()
    assert len(slow.messages) == 1
    assert sorted(len(result.sent) for result in results) == [0, 1]


# --- the front desk's forms ---------------------------------------------------------------


def test_a_bad_address_or_number_is_refused_and_everything_typed_is_kept(
    app, staff, relay, gateway, clock, db
):
    use_relay(staff, relay.port)
    use_gateway(staff, gateway)
    response = new_invitation(staff, clock, email="river@", phone="555-1234")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Please enter the number with its country code" in html
    assert "river@" in html and input_value(html, "patient_ref") == REF
    assert input_value(html, "phone") == "555-1234"
    assert storage.visits_for_day(db, "2026-11-26") == []


def test_without_a_relay_or_gateway_the_form_asks_for_neither(app, staff):
    html = staff.get("/staff/invitations/new").get_data(as_text=True)
    assert 'name="email"' not in html and 'name="phone"' not in html


def test_the_link_can_be_sent_later_from_the_invitation_page(app, staff, relay, clock, db):
    use_relay(staff, relay.port)
    visit_id = visit_id_of(new_invitation(staff, clock))
    url = f"/staff/visits/{visit_id}/invitation"
    html = staff.get(url).get_data(as_text=True)
    refused = staff.post(
        f"/staff/visits/{visit_id}/send", data={"csrf_token": csrf_from(html), "email": ""}
    )
    assert refused.status_code == 422
    assert "Please enter an e-mail address or a mobile number." in refused.get_data(as_text=True)
    sent = staff.post(
        f"/staff/visits/{visit_id}/send",
        data={"csrf_token": csrf_from(html), "email": PATIENT_EMAIL},
    )
    assert sent.status_code == 302
    run_pass(app, clock)
    assert [e.rcpt_tos for e in relay.messages] == [[PATIENT_EMAIL]]
    assert len(entries(db, "invitation_messages_queued")) == 1


def test_a_link_sent_after_the_visits_day_does_not_ask_for_answers_before_it(
    app, staff, relay, gateway, clock, db
):
    """Found on a walk: in the clinic's extra days after the appointment, "Send the link"
    still asked the patient to answer "before your visit on Thursday, November 26", a day
    already past. The e-mail and the text now just ask for the answers."""
    use_relay(staff, relay.port)
    use_gateway(staff, gateway)
    with storage.write(db):
        storage.put_setting(db, "invite_extra_days", 2)
    visit_id = visit_id_of(new_invitation(staff, clock))  # for Nov 26, open until Nov 28
    clock.moment = datetime(2026, 11, 27, 9, 0)
    sign_in_again(staff)
    html = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True)
    sent = staff.post(
        f"/staff/visits/{visit_id}/send",
        data={"csrf_token": csrf_from(html), "email": PATIENT_EMAIL, "phone": PATIENT_PHONE_TYPED},
    )
    assert sent.status_code == 302
    assert len(run_pass(app, clock).sent) == 2

    email = read(relay.messages[0])
    body = words(email.get_content())
    assert email["Subject"] == f"A few questions from {CLINIC}"
    assert "before your visit" not in body.lower() and "Before it" not in body
    assert f"{CLINIC} asks you to answer a few questions" in body
    assert "Open this link to start:" in body
    text = urllib.parse.parse_qs(gateway.requests[0]["body"])["Body"][0]
    assert text.startswith(f"{CLINIC}: please answer a few questions (about ")
    assert "before your visit" not in text and len(text) < 320


def test_a_link_sent_later_the_same_day_after_the_visit_began_asks_plainly(
    app, staff, relay, clock, db
):
    """From a second reading: at 11:00 for a 10:00 visit the e-mail still said "Before it,
    please answer"."""
    use_relay(staff, relay.port)
    visit_id = visit_id_of(new_invitation(staff, clock))  # Nov 26 at 10:00
    clock.moment = datetime(2026, 11, 26, 11, 0)
    sign_in_again(staff)
    html = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True)
    data = {"csrf_token": csrf_from(html), "email": PATIENT_EMAIL}
    assert staff.post(f"/staff/visits/{visit_id}/send", data=data).status_code == 302
    run_pass(app, clock)
    body = words(read(relay.messages[-1]).get_content())
    assert "Before it" not in body and f"{CLINIC} asks you to answer a few questions" in body


def test_a_reminder_that_could_not_leave_before_the_visit_is_not_sent_after_it(
    app, staff, relay, clock, db
):
    """From a second reading: a reminder held back (the relay down, the server off) went
    out after the visit had begun, "a reminder of your visit ... before it"."""
    use_relay(staff, relay.port)
    new_invitation(
        staff, clock, email=PATIENT_EMAIL
    )  # Nov 26 at 10:00, reminder at 10:00 the day before
    run_pass(app, clock)
    assert len(relay.messages) == 1
    clock.moment = datetime(2026, 11, 26, 10, 30)  # the server was off until now
    result = run_pass(app, clock)
    assert result.sent == [] and len(result.cancelled) == 1
    assert len(relay.messages) == 1


def test_message_settings_are_validated_and_the_header_never_shown(app, staff, gateway, db):
    refused = save_messages(
        staff, sms_mode="http", sms_http_url="ftp://x", sms_http_body="To={who}", quiet_from="25:00"
    )
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "Please enter a valid time." in html and "ftp://x" in html
    use_gateway(staff, gateway)
    html = staff.get("/staff/admin/messages").get_data(as_text=True)
    assert "QUMxOnNlY3JldA" not in html and "A header is stored." in html
    [entry] = entries(db, "message_settings_changed")
    assert "sms_http_auth" in entry["detail"] and "QUMx" not in entry["detail"]


def test_serve_runs_the_loop_and_stops_it_with_the_server(app, runner, monkeypatch):
    seen = []
    monkeypatch.setattr(waitress, "serve", lambda app_, **kw: seen.extend(threading.enumerate()))
    assert runner.invoke(args=["serve"]).exit_code == 0
    [loop] = [thread for thread in seen if thread.name == "delivery"]
    loop.join(5)
    assert not loop.is_alive()


def test_a_new_invitation_wakes_the_loop_at_once(app, staff, relay, clock):
    use_relay(staff, relay.port)
    stop = delivery.start(app, clock, base_url)  # a pass every 10 s, unless woken
    try:
        time.sleep(0.2)  # the thread is waiting
        started = time.monotonic()
        new_invitation(staff, clock, email=PATIENT_EMAIL)
        while not relay.messages and time.monotonic() < started + 5:
            time.sleep(0.02)
        took = time.monotonic() - started
    finally:
        stop.set()  # and waits for the thread to end
    assert not stop.thread.is_alive()
    assert len(relay.messages) == 1 and took < delivery.CHECK_SECONDS / 2


def test_storage_keeps_no_address_outside_contacts(app, staff, relay, clock, db):
    use_relay(staff, relay.port)
    visit_id = visit_id_of(new_invitation(staff, clock, email=PATIENT_EMAIL))
    run_pass(app, clock)
    with closing(storage.connect(app.config["DATABASE"])) as check:
        for table in ("messages", "link_tokens", "audit_log", "visits"):
            rows = check.execute(f"SELECT * FROM {table}").fetchall()
            assert PATIENT_EMAIL not in repr(rows), table
    assert storage.contact(db, visit_id)["email"] == PATIENT_EMAIL


def test_mail_settings_removed_after_queueing_fail_the_message_at_once(
    app, staff, relay, clock, db
):
    use_relay(staff, relay.port)
    visit_id = visit_id_of(new_invitation(staff, clock, email=PATIENT_EMAIL))
    storage.save_settings(db, {"smtp_host": ""})
    result = run_pass(app, clock)
    assert len(result.failed) == 1 and relay.messages == []
    page = staff.get(f"/staff/visits/{visit_id}/invitation").get_data(as_text=True)
    assert "not delivered: Outgoing mail is not set up." in page


def test_a_patient_answering_at_home_the_day_before_is_never_sent_to_the_desk(
    app, staff, relay, clock
):
    """From the e-mail, on the eve of the visit, in staffed hours: the pages speak of the
    visit's day, the worrying answer reaches the clinic, and nobody is told to wait here
    or to tell the front desk."""
    use_relay(staff, relay.port)
    new_invitation(staff, clock, email=PATIENT_EMAIL)
    run_pass(app, clock)
    [token] = set(LINK.findall(words(read(relay.messages[0]).get_content())))
    patient = Patient(app.test_client())

    welcome = words(patient.open(token).get_data(as_text=True))
    assert "before your visit on Thursday, November 26, 2026." in welcome
    assert "before your visit today" not in welcome
    assert "tell the front desk right away" not in welcome

    patient.post("/welcome", {})
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next", **FULL_ANSWERS.get(number, {})})
    safety = words(
        patient.post("/step/10", {"action": "next", "S1": "several_days"}).get_data(as_text=True)
    )
    assert "The clinic has been told" in safety
    assert "Please tell the front desk now" not in safety
    assert "tell the front desk right away" not in safety
    assert "call your local emergency number" in safety

    thanks = words(patient.post("/review", {"action": "submit"}).get_data(as_text=True))
    assert "You do not need to do anything else." in thanks
    assert "Please wait here" not in thanks and "tell the front desk" not in thanks
    alerts = staff.get("/staff/alerts.json").get_json()
    assert alerts["open"] == 1

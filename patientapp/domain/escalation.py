"""Escalation: a safety alert nobody acknowledged within the Settings limit is marked
escalated, and one e-mail goes to the on-call address, by a loop every server process
runs (``start``, beside retention's).

Several processes share the database, so every step is claimed under BEGIN IMMEDIATE:
an alert is marked escalated once, and its e-mail is claimed (attempts + 1, and no
other try before ``LEASE`` has passed) and committed before it is sent, outside the
transaction. Two processes never send the same alert's e-mail; one that dies mid-send
leaves the claim to run out, and the next pass tries again. A refused send waits out
``alerts.next_mail_try`` and is tried again while the alert stays open and unsent.

The e-mail holds no patient detail at all: no reference, no answer, no visit number. It
names the clinic, says how long ago a patient's safety answer raised the alert, and links
to the board. No request ever sends mail: a relay that is down costs the loop, not a
patient's save.
"""

from __future__ import annotations

import logging
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import force_locale, gettext, ngettext
from flask_babel import lazy_gettext as _l

from patientapp.db import storage
from patientapp.domain import alerts, mail
from patientapp.domain.records import Alert
from patientapp.i18n import current_language

log = logging.getLogger(__name__)

CHECK_SECONDS = 20
# A claimed send not recorded by then (its process died) may be tried again: far longer
# than a send can take (a few steps of mail.TIMEOUT each).
LEASE = timedelta(minutes=2)
ACTOR = "escalation"
DEFAULT_MINUTES = 5  # until the clinic sets its own limit under Settings
DEFAULT_CLINIC_NAME = _l("Your clinic")
BOARD_PATH = "/staff/"


@dataclass
class PassResult:
    """What one pass did: visit ids of the alerts it escalated, and of those whose
    e-mail it sent or failed to send."""

    escalated: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def escalate_after_minutes(settings: dict) -> int:
    stored = settings.get("escalate_after_minutes")
    return int(stored if stored is not None else DEFAULT_MINUTES)


def clinic_name(settings: dict) -> str:
    return str(settings.get("clinic_name") or DEFAULT_CLINIC_NAME)


def message_name(settings: dict) -> str:
    """The clinic as messages to patients name it: the name set for messages (Invitations
    by e-mail and text), else the clinic's own."""
    return str(settings.get("message_clinic_name") or "").strip() or clinic_name(settings)


def board_link(base_url: str) -> str:
    return base_url.rstrip("/") + BOARD_PATH


def _paragraphs(parts) -> str:
    """Plain text as mail readers expect it: short lines, a blank line between paragraphs
    (a link is never broken)."""
    return (
        "\n\n".join(
            textwrap.fill(part, 72, break_long_words=False, break_on_hyphens=False)
            for part in parts
        )
        + "\n"
    )


def escalation_message(relay: mail.Relay, name: str, minutes: int, board: str):
    """The on-call e-mail, in the current language: the clinic, how long the alert has
    waited, the board's address. Nothing about the patient."""
    subject = gettext("Safety alert at %(clinic)s not acknowledged", clinic=name)
    body = _paragraphs(
        (
            ngettext(
                "At %(clinic)s, a patient's answer to the safety question raised a safety "
                "alert %(num)s minute ago, and nobody has acknowledged it yet.",
                "At %(clinic)s, a patient's answer to the safety question raised a safety "
                "alert %(num)s minutes ago, and nobody has acknowledged it yet.",
                minutes,
                clinic=name,
            ),
            gettext("Please open the board now, see the alert and acknowledge it:"),
            board,
            gettext(
                "This e-mail holds no patient detail on purpose. It is sent once for each alert."
            ),
        )
    )
    return mail.message(relay, subject, body, headers=_language_header())


def relay_test_message(relay: mail.Relay, name: str, board: str):
    """The admin's test e-mail: the relay works; nothing about any patient."""
    subject = gettext("Test message from %(clinic)s", clinic=name)
    body = _paragraphs(
        (
            gettext(
                "This is a test of the outgoing mail of %(clinic)s. If you read it, "
                "escalation e-mails about unacknowledged safety alerts reach this address.",
                clinic=name,
            ),
            board,
        )
    )
    return mail.message(relay, subject, body, headers=_language_header())


def _language_header() -> dict[str, str]:
    """The language the e-mail is written in (the clinic's default for the loop's
    e-mail), as the invitation e-mails say theirs (domain/delivery.py)."""
    return {"Content-Language": current_language().tag}


def _waited(alert: Alert, now: datetime) -> int:
    return max(0, int((now - alert.created_at).total_seconds() // 60))


def escalate_due(db, now: datetime, settings: dict) -> list[int]:
    """Mark every alert unacknowledged past the limit escalated, each with its audit entry
    (the visit id only); their visit ids."""
    minutes = escalate_after_minutes(settings)
    raised_before = now - timedelta(minutes=minutes)
    escalated = []
    if not storage.alerts_to_escalate(db, raised_before):
        return escalated  # the usual pass: a read, and no write lock taken
    with storage.write(db):
        for alert in storage.alerts_to_escalate(db, raised_before):
            if storage.mark_escalated(db, alert.id, now):
                storage.audit(
                    db,
                    "alert_escalated",
                    now=now,
                    actor=ACTOR,
                    visit_id=alert.visit_id,
                    detail=f"unacknowledged after {minutes} minute{'' if minutes == 1 else 's'}",
                )
                escalated.append(alert.visit_id)
    return escalated


def claim_mail(db, now: datetime) -> tuple[Alert, int] | None:
    """Claim the next e-mail due, committed before anything is sent: (alert, attempt)."""
    if storage.escalation_mail_due(db, now) is None:
        return None  # nothing due: no write lock taken
    with storage.write(db):  # looked at again under the lock: another may have taken it
        alert = storage.escalation_mail_due(db, now)
        if alert is None:
            return None
        attempt = storage.claim_escalation_mail(db, alert.id, now, now + LEASE)
    return (alert, attempt) if attempt else None


def send_due_mail(db, clock: Callable[[], datetime], settings: dict, base_url: str, result):
    """Send the e-mail of every escalated alert that is due, one claim at a time; stop at
    the first refusal (the relay is likely down: the others wait for the next pass)."""
    relay = mail.Relay.from_settings(settings)
    if not relay.configured:
        return
    name, board = clinic_name(settings), board_link(base_url)
    while (claimed := claim_mail(db, clock())) is not None:
        alert, attempt = claimed
        message = escalation_message(relay, name, _waited(alert, clock()), board)
        try:
            answer = mail.send(relay, message)
        except mail.MailError as error:
            now = clock()
            with storage.write(db):
                storage.escalation_mail_failed(
                    db, alert.id, str(error), alerts.next_mail_try(attempt, now)
                )
                storage.audit(
                    db,
                    "escalation_mail_failed",
                    now=now,
                    actor=ACTOR,
                    visit_id=alert.visit_id,
                    detail=f"to {relay.oncall}, attempt {attempt}: {error}",
                )
            result.failed.append(alert.visit_id)
            return
        now = clock()
        with storage.write(db):
            storage.escalation_mail_sent(db, alert.id, now)
            storage.audit(
                db,
                "escalation_mail_sent",
                now=now,
                actor=ACTOR,
                visit_id=alert.visit_id,
                detail=f"to {relay.oncall}, attempt {attempt}: {answer}",
            )
        result.sent.append(alert.visit_id)


def run_pass(db, clock: Callable[[], datetime], base_url: str) -> PassResult:
    """One pass on the caller's connection: escalate what is due, then send what is due."""
    settings = storage.get_settings(db)
    result = PassResult(escalated=escalate_due(db, clock(), settings))
    send_due_mail(db, clock, settings, base_url, result)
    return result


def check(app, clock: Callable[[], datetime], base_url: Callable[[], str]) -> PassResult:
    """One pass of the server's escalation thread, on a connection of its own and in the
    clinic's default language; `clock` and `base_url` are the web's ``now`` and
    ``base_url``, called in the app context."""
    with app.app_context(), force_locale(app.config["DEFAULT_LANGUAGE"]):
        db = storage.connect(app.config["DATABASE"], key=app.config.get("DATABASE_KEY"))
        storage.use_zone(storage.zone_setting(db))
        try:
            return run_pass(db, clock, base_url())
        finally:
            db.close()


def _check_logged(app, clock, base_url) -> None:
    try:
        check(app, clock, base_url)
    except Exception:
        log.exception("escalation pass failed; trying again in %s seconds", CHECK_SECONDS)


def _watch(app, clock, base_url, stop: threading.Event) -> None:
    while not stop.wait(CHECK_SECONDS):
        _check_logged(app, clock, base_url)


def start(app, clock: Callable[[], datetime], base_url: Callable[[], str]) -> threading.Event:
    """Start the daemon thread that runs a pass every CHECK_SECONDS (the first one
    CHECK_SECONDS after start, so serving begins at once); set the returned event to stop
    it."""
    stop = threading.Event()
    threading.Thread(
        target=_watch, args=(app, clock, base_url, stop), name="escalation", daemon=True
    ).start()
    return stop

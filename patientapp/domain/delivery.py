"""Invitations and one reminder by e-mail or text message, sent by the server's loop.

The front desk gives an address or a number (or both) when making an invitation or
later; ``plan`` stores them in ``contacts`` and queues the invitation now and one
reminder ``reminder_hours_before`` the appointment (Settings), both moved out of the
clinic's quiet hours. A request never sends anything: a relay or gateway that is down
costs the loop, never the board or a patient.

Each pass of the loop (``run_pass``, every ``CHECK_SECONDS`` in every server process):
1. erases the contact details of every visit that is sent, cancelled or expired (and
   cancels what it still had queued), then checkpoints the WAL so the erased rows leave
   no bytes behind, as retention does for answers;
2. claims due messages one at a time under BEGIN IMMEDIATE (attempts + 1, no other try
   before ``LEASE``), so two processes never send the same one; with the claim it mints
   the message's own link (a fresh random token, only its SHA-256 stored, which opens
   the visit like the invitation's link and tells the board it was opened);
3. sends it outside the transaction and records what became of it: sent (with the
   relay's or gateway's answer), refused for good (a bounced address, a 4xx from the
   gateway: failed at once), or refused for now (tried again after the backoff of
   ``alerts.next_mail_try``, and failed after ``MAX_ATTEMPTS``). Every try is audited
   with the visit id, the kind and the channel, never the address or the number.

What a message says: the clinic's name, the appointment's day and time, the link, how
long it works and how to stop further messages, in the invitation's language. Never an
answer, a diagnosis or the word "psychiatrist" (a phone's lock screen shows texts to
anyone nearby).
"""

from __future__ import annotations

import logging
import textwrap
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from flask_babel import force_locale, format_date, format_time, get_locale, gettext, ngettext

from patientapp.db import storage
from patientapp.domain import alerts, invitations, mail, textmsg, visits
from patientapp.domain.escalation import message_name
from patientapp.domain.records import Visit
from patientapp.i18n import current_language
from patientapp.questionnaire import timing

log = logging.getLogger(__name__)

CHECK_SECONDS = 10
MIN_WAIT = 0.2  # seconds between passes at least, when a message is due right away
LEASE = timedelta(minutes=2)  # far longer than one send can take
MAX_ATTEMPTS = 5
ACTOR = "delivery"
EMAIL, SMS = "email", "sms"
INVITATION, REMINDER = "invitation", "reminder"
DEFAULT_REMINDER_HOURS = 24
DEFAULT_QUIET_FROM, DEFAULT_QUIET_UNTIL = "21:00", "08:00"
LINK_PATH = "/v/"
STOP_SUFFIX = "/stop"


@dataclass
class PassResult:
    """What one pass did: message ids sent, failed for good, to be retried, cancelled,
    postponed (quiet hours), and visit ids whose contact details were erased."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    postponed: list[int] = field(default_factory=list)
    erased: list[int] = field(default_factory=list)
    next_due: datetime | None = None  # when the next queued message may be tried


# --- the clinic's settings ---------------------------------------------------------------


def reminder_hours(settings: Mapping) -> int:
    stored = settings.get("reminder_hours_before")
    return int(stored if stored is not None else DEFAULT_REMINDER_HOURS)


def _clock_time(text: object, default: str) -> time:
    try:
        return time.fromisoformat(str(text or default))
    except ValueError:
        return time.fromisoformat(default)


def quiet_hours(settings: Mapping) -> tuple[time, time]:
    """From and until (clinic time); equal times mean no quiet hours."""
    return (
        _clock_time(settings.get("quiet_from"), DEFAULT_QUIET_FROM),
        _clock_time(settings.get("quiet_until"), DEFAULT_QUIET_UNTIL),
    )


def is_quiet(settings: Mapping, moment: datetime) -> bool:
    start, end = quiet_hours(settings)
    now = moment.time()
    if start == end:
        return False
    if start < end:
        return start <= now < end
    return now >= start or now < end  # over midnight, e.g. 21:00 to 08:00


def quiet_ends(settings: Mapping, moment: datetime) -> datetime:
    """`moment` itself outside quiet hours; else the end of the quiet hours it falls in."""
    if not is_quiet(settings, moment):
        return moment
    end = datetime.combine(moment.date(), quiet_hours(settings)[1])
    return end if end > moment else end + timedelta(days=1)


def reminder_time(settings: Mapping, appointment: datetime, now: datetime) -> datetime | None:
    """When the reminder goes: the Settings hours before the appointment; in quiet hours,
    at their end if that is still before the appointment, else at their start (the
    evening before). None when reminders are off or that time has passed."""
    hours = reminder_hours(settings)
    if hours <= 0:
        return None
    due = appointment - timedelta(hours=hours)
    if is_quiet(settings, due):
        later = quiet_ends(settings, due)
        if later < appointment:
            due = later
        else:
            start = datetime.combine(due.date(), quiet_hours(settings)[0])
            due = (start if start <= due else start - timedelta(days=1)) - timedelta(minutes=1)
    return due if due > now else None


@dataclass(frozen=True)
class Channels:
    """What the clinic can send through: e-mail (a relay and a sender) and text messages
    (a gateway, by HTTP or by e-mail through the same relay)."""

    relay: mail.Relay
    gateway: textmsg.Gateway

    @classmethod
    def from_settings(cls, settings: Mapping) -> Channels:
        return cls(mail.Relay.from_settings(settings), textmsg.Gateway.from_settings(settings))

    @property
    def email(self) -> bool:
        return self.relay.can_send

    @property
    def sms(self) -> bool:
        if not self.gateway.configured:
            return False
        return self.gateway.mode != "email" or self.relay.can_send


# --- queueing (inside the caller's transaction) -------------------------------------------


def plan(
    db, visit: Visit, *, email: str, phone: str, settings: Mapping, now: datetime
) -> list[str]:
    """Store the address and number given (either may be empty) and queue the invitation
    now (after quiet hours) and the reminder through each; the channels queued. Call it
    inside the write transaction that makes or changes the invitation."""
    channels = [channel for channel, given in ((EMAIL, email), (SMS, phone)) if given]
    if not channels or not visits.is_open(visit, now):
        return []
    storage.put_contact(db, visit.id, email=email, phone=phone)
    reminder = reminder_time(settings, visit.appointment_at, now)
    for channel in channels:
        storage.queue_message(
            db,
            visit.id,
            kind=INVITATION,
            channel=channel,
            due_at=quiet_ends(settings, now),
            now=now,
        )
        if reminder is not None:
            storage.queue_message(
                db, visit.id, kind=REMINDER, channel=channel, due_at=reminder, now=now
            )
    return channels


def opt_out(db, visit_id: int, now: datetime) -> None:
    """The patient's "no more messages": details erased, queued messages cancelled."""
    storage.opt_out(db, visit_id, now)
    storage.audit(db, "messages_opted_out", now=now, actor="patient", visit_id=visit_id)


def note_opened(db, token: str, now: datetime) -> None:
    """The patient opened a message's link: the board shows it (first time only; a plain
    invitation link costs a read)."""
    token_hash = invitations.hash_secret(token)
    if storage.link_unopened(db, token_hash):
        with storage.write(db):
            storage.mark_link_opened(db, token_hash, now)


def wake() -> None:
    """Ask this process's loop to run a pass now (a new invitation is waiting)."""
    with _loops_lock:
        running = list(_loops)
    for loop in running:
        loop.nudge.set()


# --- the words ----------------------------------------------------------------------------


def _minutes(visit) -> int:
    """The measured minutes the welcome page promises, in the message's language, with
    the standard measures the invitation includes."""
    language = str(get_locale())
    return timing.promised_minutes(language, visits.asked_measures(visit, language))


def _paragraphs(parts) -> str:
    return (
        "\n\n".join(
            textwrap.fill(part, 72, break_long_words=False, break_on_hyphens=False)
            for part in parts
        )
        + "\n"
    )


@dataclass(frozen=True)
class Words:
    """One message: the subject (e-mail only) and the body, in the current language,
    and for an e-mail the headers a mail reader shows or acts on."""

    subject: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def compose(
    kind: str,
    channel: str,
    *,
    clinic: str,
    visit: Visit,
    link: str,
    stop: str,
    now: datetime | None = None,
) -> Words:
    """The message for one visit, in the current language (call under force_locale);
    `now`, the clinic's time when it goes out: a link sent once the appointment has
    begun (later that day, or in the clinic's extra days) does not ask for answers
    "before your visit"."""
    day = format_date(visit.appointment_at, "full")
    at = format_time(visit.appointment_at, "short")
    until = format_date(visit.expires_at, "long")
    # A reminder to a patient who answered a screen and did not send says so (a reminder
    # that asks "if you have not answered" read oddly to one stopped at the review); one
    # who only pressed Start has no answers saved and gets the plain reminder.
    started = kind == REMINDER and visits.went_past_first_screen(visit)
    passed = now is not None and visit.appointment_at <= now
    if channel == SMS:
        when = {
            "clinic": clinic,
            "day": format_date(visit.appointment_at, "medium"),
            "time": at,
            "link": link,
        }
        if started:
            text = gettext(
                "%(clinic)s: a reminder of your visit on %(day)s at %(time)s. You started "
                "the questions but have not sent them yet. To finish: %(link)s",
                **when,
            )
        elif kind == REMINDER:
            text = gettext(
                "%(clinic)s: a reminder of your visit on %(day)s at %(time)s. If you "
                "have not yet, please answer a few questions before it: %(link)s",
                **when,
            )
        elif passed:
            text = ngettext(
                "%(clinic)s: please answer a few questions (about %(num)d minute): %(link)s",
                "%(clinic)s: please answer a few questions (about %(num)d minutes): %(link)s",
                _minutes(visit),
                **when,
            )
        else:
            text = ngettext(
                "%(clinic)s: before your visit on %(day)s at %(time)s, please answer a few "
                "questions (about %(num)d minute): %(link)s",
                "%(clinic)s: before your visit on %(day)s at %(time)s, please answer a few "
                "questions (about %(num)d minutes): %(link)s",
                _minutes(visit),
                **when,
            )
        return Words("", text + " " + gettext("No more texts: %(link)s", link=stop))
    if started:
        subject = gettext("Reminder: your visit at %(clinic)s", clinic=clinic)
        opening = gettext(
            "This is a reminder of your visit at %(clinic)s on %(day)s at %(time)s. You "
            "started the questions but have not sent them yet. Your answers so far are "
            "saved: you can finish and send them now.",
            clinic=clinic,
            day=day,
            time=at,
        )
    elif kind == REMINDER:
        subject = gettext("Reminder: your visit at %(clinic)s", clinic=clinic)
        opening = ngettext(
            "This is a reminder of your visit at %(clinic)s on %(day)s at %(time)s. If you "
            "have not answered the questions before your visit yet, you can do it now. It "
            "takes about %(num)d minute.",
            "This is a reminder of your visit at %(clinic)s on %(day)s at %(time)s. If you "
            "have not answered the questions before your visit yet, you can do it now. It "
            "takes about %(num)d minutes.",
            _minutes(visit),
            clinic=clinic,
            day=day,
            time=at,
        )
    elif passed:
        subject = gettext("A few questions from %(clinic)s", clinic=clinic)
        opening = ngettext(
            "%(clinic)s asks you to answer a few questions about how you feel about your "
            "treatment. It takes about %(num)d minute, and your answers help your care "
            "focus on what matters to you.",
            "%(clinic)s asks you to answer a few questions about how you feel about your "
            "treatment. It takes about %(num)d minutes, and your answers help your care "
            "focus on what matters to you.",
            _minutes(visit),
            clinic=clinic,
        )
    else:
        subject = gettext("Before your visit at %(clinic)s", clinic=clinic)
        opening = ngettext(
            "Your visit at %(clinic)s is on %(day)s at %(time)s. Before it, please answer a "
            "few questions about how you feel about your treatment. It takes about %(num)d "
            "minute, and your answers help your visit focus on what matters to you.",
            "Your visit at %(clinic)s is on %(day)s at %(time)s. Before it, please answer a "
            "few questions about how you feel about your treatment. It takes about %(num)d "
            "minutes, and your answers help your visit focus on what matters to you.",
            _minutes(visit),
            clinic=clinic,
            day=day,
            time=at,
        )
    body = _paragraphs(
        (
            opening,
            gettext("Open this link to go on:") if started else gettext("Open this link to start:"),
            link,
            gettext(
                "The link works until %(day)s. It opens your own questions, so please do "
                "not share it.",
                day=until,
            ),
            gettext(
                "If you did not expect this message, or want no more messages about this visit:"
            ),
            stop,
        )
    )
    # A sender with a name, the message's language, and the stop link where mail readers
    # put an "Unsubscribe" button (it opens the same page that asks before erasing).
    headers = {"Content-Language": current_language().tag, "List-Unsubscribe": f"<{stop}>"}
    return Words(subject, body, headers)


# --- the loop -----------------------------------------------------------------------------


def erase_due(db, now: datetime) -> list[int]:
    """Erase the contact details every sent, cancelled or expired visit still has, then
    empty the WAL; the visits' ids."""
    if not storage.contacts_to_erase(db, now):
        return []  # the usual pass: a read, and no write lock taken
    with storage.write(db):
        erased = storage.contacts_to_erase(db, now)
        for visit_id in erased:
            storage.erase_contact(db, visit_id)
            storage.audit(db, "contact_erased", now=now, actor=ACTOR, visit_id=visit_id)
    storage.checkpoint(db)
    return erased


@dataclass(frozen=True)
class Claimed:
    message: dict
    attempt: int
    visit: Visit
    to: str  # the address or number; only ever in memory
    token: str


def _stale(message: dict, visit: Visit | None, contact: dict | None, now: datetime) -> bool:
    if visit is None or not visits.is_open(visit, now) or contact is None:
        return True
    if message["kind"] == REMINDER and visit.appointment_at <= now:
        return True  # late (retries, a server down): a reminder of a visit already begun
    return (
        contact["opted_out_at"] is not None
        or not contact["email" if message["channel"] == EMAIL else "phone"]
    )


def claim(db, settings: Mapping, now: datetime, result: PassResult) -> Claimed | None:
    """Take the next due message, with its link minted, committed before it is sent. A
    message no longer wanted is cancelled; one due in quiet hours waits for their end."""
    while storage.message_due(db, now) is not None:
        with storage.write(db):  # looked at again under the lock: another may have taken it
            message = storage.message_due(db, now)
            if message is None:
                return None
            visit = storage.get_visit(db, message["visit_id"])
            contact = storage.contact(db, message["visit_id"])
            if _stale(message, visit, contact, now):
                storage.message_done(db, message["id"], state="cancelled")
                result.cancelled.append(message["id"])
                continue
            if is_quiet(settings, now):
                storage.postpone_message(db, message["id"], quiet_ends(settings, now))
                result.postponed.append(message["id"])
                continue
            attempt = storage.claim_message(db, message["id"], now, now + LEASE)
            if not attempt:
                continue
            token = invitations.new_token()
            storage.add_link_token(db, invitations.hash_secret(token), visit.id, message["id"], now)
            to = contact["email" if message["channel"] == EMAIL else "phone"]
            return Claimed(message, attempt, visit, to, token)
    return None


class SendError(Exception):
    def __init__(self, text: str, permanent: bool):
        super().__init__(text)
        self.permanent = permanent


def _send(channels: Channels, claimed: Claimed, words: Words, sender_name: str = "") -> str:
    """Hand the message over; the relay's or gateway's answer, or SendError."""
    if claimed.message["channel"] == EMAIL and not channels.email:
        # Set up when it was queued, since removed: no try can succeed.
        raise SendError(gettext("Outgoing mail is not set up."), permanent=True)
    try:
        if claimed.message["channel"] == EMAIL:
            message = mail.message(
                channels.relay,
                words.subject,
                words.body,
                to=claimed.to,
                sender_name=sender_name,
                headers=words.headers,
            )
            return mail.send(channels.relay, message, to=claimed.to)
        if channels.gateway.mode == "email":
            to = textmsg.email_recipient(channels.gateway, claimed.to)
            message = mail.message(channels.relay, "", words.body, to=to)
            return mail.send(channels.relay, message, to=to)
        return textmsg.send_http(channels.gateway, claimed.to, words.body)
    except mail.MailError as error:
        raise SendError(str(error), error.permanent) from None
    except textmsg.TextError as error:
        raise SendError(str(error), error.permanent) from None


def _sender_name(settings: Mapping) -> str:
    """The name beside the sender's address: the name set for messages, else the clinic's
    (none when neither is set: the relay's address alone, no "Your clinic")."""
    own = str(settings.get("message_clinic_name") or "").strip()
    return own or str(settings.get("clinic_name") or "")


def _words(
    claimed: Claimed, settings: Mapping, base_url: str, default_language: str, now: datetime
) -> Words:
    link = base_url.rstrip("/") + LINK_PATH + claimed.token
    language = claimed.visit.suggested_language or claimed.visit.answer_language
    with force_locale(language or default_language):
        return compose(
            claimed.message["kind"],
            claimed.message["channel"],
            clinic=message_name(dict(settings)),
            visit=claimed.visit,
            link=link,
            stop=link + STOP_SUFFIX,
            now=now,
        )


def _record(db, claimed: Claimed, clock, *, answer: str = "", error: SendError | None = None):
    message, now = claimed.message, clock()
    what = f"{message['kind']} by {message['channel']}, attempt {claimed.attempt}"
    with storage.write(db):
        if error is None:
            storage.message_done(db, message["id"], state="sent", answer=answer, sent_at=now)
            action, detail, outcome = "message_sent", f"{what}: {answer}", "sent"
        else:
            storage.drop_link_tokens(db, message["id"])
            give_up = error.permanent or claimed.attempt >= MAX_ATTEMPTS
            storage.message_done(
                db,
                message["id"],
                state="failed" if give_up else "queued",
                error=str(error),
                next_at=None if give_up else alerts.next_mail_try(claimed.attempt, now),
            )
            action = "message_failed"
            detail = f"{what}: {error}"
            outcome = "failed" if give_up else "retrying"
        storage.audit(db, action, now=now, actor=ACTOR, visit_id=message["visit_id"], detail=detail)
    return outcome


def run_pass(
    db, clock: Callable[[], datetime], base_url: str, default_language: str = "en"
) -> PassResult:
    """One pass on the caller's connection (in an app context, for the words)."""
    result = PassResult(erased=erase_due(db, clock()))
    settings = storage.get_settings(db)
    channels = Channels.from_settings(settings)
    while (claimed := claim(db, settings, clock(), result)) is not None:
        words = _words(claimed, settings, base_url, default_language, clock())
        try:
            # The clinic's name beside the sender, as the subject already names it.
            answer = _send(channels, claimed, words, _sender_name(settings))
        except SendError as error:
            outcome = _record(db, claimed, clock, error=error)
        else:
            outcome = _record(db, claimed, clock, answer=answer)
        getattr(result, outcome).append(claimed.message["id"])
    return result


def check(app, clock: Callable[[], datetime], base_url: Callable[[], str]) -> PassResult:
    """One pass of the server's delivery thread, on a connection of its own, in the
    clinic's default language (a refusal's words, as staff read them); each message in
    its own."""
    with app.app_context(), force_locale(app.config["DEFAULT_LANGUAGE"]):
        db = storage.connect(app.config["DATABASE"], key=app.config.get("DATABASE_KEY"))
        storage.use_zone(storage.zone_setting(db))
        try:
            result = run_pass(db, clock, base_url(), app.config["DEFAULT_LANGUAGE"])
            result.next_due = storage.next_message_at(db)
            return result
        finally:
            db.close()


def _check_logged(app, clock, base_url) -> float:
    """One pass; how long to wait before the next: until the next message is due, at
    most CHECK_SECONDS (another process may queue one meanwhile)."""
    try:
        result = check(app, clock, base_url)
    except Exception:
        log.exception("delivery pass failed; trying again in %s seconds", CHECK_SECONDS)
        return CHECK_SECONDS
    if result.next_due is None:
        return CHECK_SECONDS
    with app.app_context():
        seconds = (result.next_due - clock()).total_seconds()
    return min(CHECK_SECONDS, max(MIN_WAIT, seconds))


class Loop:
    """A running delivery thread: ``nudge`` wakes it (``wake`` nudges every loop of this
    process), ``set`` stops it and waits for the pass under way to end, so no pass
    outlives the server that started it."""

    JOIN_SECONDS = 30  # a pass mid-send ends within a few of the relay's 10 s steps

    def __init__(self, app, clock, base_url):
        self.stop, self.nudge = threading.Event(), threading.Event()
        self.thread = threading.Thread(
            target=self._watch, args=(app, clock, base_url), name="delivery", daemon=True
        )

    def _watch(self, app, clock, base_url) -> None:
        wait = CHECK_SECONDS
        while not self.stop.is_set():
            self.nudge.wait(wait)
            self.nudge.clear()
            if self.stop.is_set():
                break
            wait = _check_logged(app, clock, base_url)
        with _loops_lock:
            _loops.discard(self)

    def set(self) -> None:
        self.stop.set()
        self.nudge.set()
        if self.thread is not threading.current_thread():
            self.thread.join(self.JOIN_SECONDS)

    def is_set(self) -> bool:
        return self.stop.is_set()


_loops: set[Loop] = set()
_loops_lock = threading.Lock()


def start(app, clock: Callable[[], datetime], base_url: Callable[[], str]) -> Loop:
    """Start the daemon thread that runs a pass every CHECK_SECONDS, sooner when a queued
    message falls due (a reminder leaves at its minute), and at once when ``wake`` is
    called in this process; ``set()`` on the returned loop stops it."""
    loop = Loop(app, clock, base_url)
    with _loops_lock:
        _loops.add(loop)
    loop.thread.start()
    return loop

"""Outgoing mail through the clinic's own relay, with Python's smtplib: the relay's
settings as the Outgoing mail page stores them, one message sent, and what the relay
answered, in words an admin can act on.

No request is needed: callers pass the settings and the message. Sending is never done in
a patient's request (the escalation loop and the admin's test button only), and every
socket step gives up after ``TIMEOUT`` seconds.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email import errors
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

# The settings keys of the Outgoing mail page (the general Settings page leaves them be).
MAIL_SETTINGS = (
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_user",
    "smtp_password",
    "mail_from",
    "oncall_address",
)
SECURITY_LABELS = {
    "starttls": _l("STARTTLS (usually port 587)"),
    "tls": _l("TLS from the first byte (usually port 465)"),
    "none": _l("None: a relay on this machine or the clinic's own network (port 25)"),
}
DEFAULT_PORT = 587
DEFAULT_SECURITY = "starttls"
TIMEOUT = 10  # seconds for each step with the relay: connecting, each command, each reply


@dataclass(frozen=True, kw_only=True, slots=True)
class Relay:
    """Where and how mail leaves, from the clinic's settings."""

    host: str = ""
    port: int = DEFAULT_PORT
    security: str = DEFAULT_SECURITY
    user: str = ""
    password: str = field(default="", repr=False)  # kept out of logs and tracebacks
    sender: str = ""
    oncall: str = ""

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Relay:
        security = str(settings.get("smtp_security") or DEFAULT_SECURITY)
        return cls(
            host=str(settings.get("smtp_host") or ""),
            port=int(settings.get("smtp_port") or DEFAULT_PORT),
            security=security if security in SECURITY_LABELS else DEFAULT_SECURITY,
            user=str(settings.get("smtp_user") or ""),
            password=str(settings.get("smtp_password") or ""),
            sender=str(settings.get("mail_from") or ""),
            oncall=str(settings.get("oncall_address") or ""),
        )

    @property
    def configured(self) -> bool:
        """A relay, a sender and an on-call address: without all three nothing is sent."""
        return bool(self.host and self.sender and self.oncall)

    @property
    def can_send(self) -> bool:
        """A relay and a sender: enough for mail to a patient (no on-call address needed)."""
        return bool(self.host and self.sender)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class MailError(Exception):
    """The relay did not take the message; the text says why (never the password).
    ``permanent`` when the relay refused the recipient for good (a 5xx answer: the
    message bounced), so trying again cannot help."""

    def __init__(self, text: str, *, permanent: bool = False):
        super().__init__(text)
        self.permanent = permanent


def message(
    relay: Relay,
    subject: str,
    body: str,
    to: str = "",
    *,
    sender_name: str = "",
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A plain-text message from the sender (with `sender_name` shown beside it) to `to`,
    by default the on-call address, with any further `headers`."""
    mail = EmailMessage()
    mail["From"] = _sender(relay.sender, sender_name)
    mail["To"] = to or relay.oncall
    mail["Subject"] = subject
    mail["Date"] = formatdate(localtime=True)
    # The sender's own domain, not this machine's name (looking that up can be slow).
    mail["Message-ID"] = make_msgid(domain=relay.sender.rpartition("@")[2] or None)
    mail.set_content(body)
    for name, value in (headers or {}).items():  # after: set_content drops Content-*
        mail[name] = value
    # Headers fold at 998 characters, not 78: a long address in List-Unsubscribe would
    # otherwise go out as an encoded word, which no mail reader takes for a link. The
    # body was encoded above at 78.
    mail.policy = mail.policy.clone(max_line_length=998)
    return mail


def _sender(address: str, name: str) -> str | Address:
    """The sender's address with a name beside it ("Harbor Clinic <reflect@...>"),
    quoted and encoded as the name needs; the address alone without a name, or when it
    is not a plain address to put one beside."""
    if not name:
        return address
    try:
        return Address(display_name=name, addr_spec=address)
    except (ValueError, IndexError, errors.HeaderParseError):
        return address


def send(relay: Relay, mail: EmailMessage, to: str = "") -> str:
    """Hand the message for `to` (by default the on-call address) to the relay; what it
    answered (e.g. "250 2.0.0 Ok: queued"). Raises MailError with the reason when it is
    not taken; a patient's address never appears in that reason."""
    to = to or relay.oncall
    patient = to != relay.oncall
    # The password first: a patient's name inside it must not leave the rest behind.
    clean = (lambda text: without(to, _hide(relay, text))) if patient else str
    try:
        answer = _send(relay, mail, to)
    except Exception as error:  # every way a relay can fail is reported, none crashes
        text = _hide(relay, problem(relay, error, oncall=not patient, clean=clean))
        raise MailError(text, permanent=_bounced(error)) from None
    return clean(answer)


NAME_CHARACTERS = r"[\w.%+-]"  # what an address's parts are made of, around a part found


def without(address: str, text: str) -> str:
    """A relay's words with a patient's address cut out, in any case and in part: relays
    echo the recipient ("queued as X1 for <River@Mail.Example>", "mailbox 15552017788
    unknown" from an e-mail-to-text gateway, "RIVER%MAIL.EXAMPLE", "river%40mail.example"),
    and what a relay answered goes to the audit log, which keeps it for good. The whole
    address and its encoded spellings, its mailbox name and its domain (each 3 characters
    or more, not inside a longer name), and when the mailbox holds a phone number (7
    digits or more) that number however it is written: the subscriber's last 7 digits with
    the number's own digits and separators before them, or a trunk 0 ("07700 900123" for
    447700900123); each is replaced by "…"."""
    local, _at, domain = address.rpartition("@")
    encoded = [urllib.parse.quote(address, safe=""), f"{local}%40{domain}", f"{local}%{domain}"]
    encoded += [spelling.replace("+", "+2B") for spelling in (address, local) if "+" in local]
    for spelling in sorted({address, *encoded}, key=len, reverse=True):
        text = re.sub(re.escape(spelling), "…", text, flags=re.I)
    for part in (local, domain):
        if len(part) >= 3:
            # Not inside a longer name (a sentence's full stop or a "%40" may follow it).
            alone = rf"(?<!{NAME_CHARACTERS})\+?{re.escape(part)}(?![\w+-]|\.\w)"
            text = re.sub(alone, "…", text, flags=re.I)
    number = max(re.findall(r"\d+", local), key=len, default="")
    if len(number) >= 7:
        between = r"[\s().-]*"
        leading = number[:-7]
        before = "|".join(between.join(leading[i:]) + between for i in range(len(leading)))
        tail = between.join(number[-7:])
        lead = rf"(?:[+(]|0{between})?(?:{before})?" if before else rf"(?:[+(]|0{between})?"
        text = re.sub(rf"(?<!\d){lead}{tail}(?!\d)", "…", text)
    return text


def _bounced(error: Exception) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return False


def _send(relay: Relay, mail: EmailMessage, to: str) -> str:
    if relay.security == "tls":
        smtp = smtplib.SMTP_SSL(
            relay.host, relay.port, timeout=TIMEOUT, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(relay.host, relay.port, timeout=TIMEOUT)
    with smtp:
        if relay.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if relay.user:
            smtp.login(relay.user, relay.password)
        # mail, rcpt and data one by one (what sendmail does), to keep the relay's answer.
        smtp.ehlo_or_helo_if_needed()
        code, reply = smtp.mail(relay.sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, relay.sender)
        code, reply = smtp.rcpt(to)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
        code, reply = smtp.data(mail.as_bytes(policy=mail.policy.clone(linesep="\r\n")))
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
    return _reply(code, reply)


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}".strip()


def _hide(relay: Relay, text: str) -> str:
    """A relay that echoes what it was sent never puts the password on a page or in the
    log."""
    return text.replace(relay.password, "********") if relay.password else text


def problem(
    relay: Relay, error: BaseException, *, oncall: bool = True, clean: Callable[[str], str] = str
) -> str:
    """What went wrong, in the current language, with the relay's own words (each passed
    through `clean`: a patient's address cut out of them); `oncall` False when the
    message was for a patient."""
    where = relay.address
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return gettext(
            "Authentication failed at %(relay)s: %(answer)s",
            relay=where,
            answer=clean(_reply(error.smtp_code, error.smtp_error)),
        )
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = "; ".join(clean(_reply(*answer)) for answer in error.recipients.values())
        if not oncall:
            return gettext(
                "The relay %(relay)s refused the patient's address: %(answer)s",
                relay=where,
                answer=answers,
            )
        return gettext(
            "The relay %(relay)s refused the on-call address: %(answer)s",
            relay=where,
            answer=answers,
        )
    if isinstance(error, smtplib.SMTPSenderRefused):
        return gettext(
            "The relay %(relay)s refused the sender address: %(answer)s",
            relay=where,
            answer=clean(_reply(error.smtp_code, error.smtp_error)),
        )
    if isinstance(error, smtplib.SMTPResponseException):
        return gettext(
            "The relay %(relay)s answered: %(answer)s",
            relay=where,
            answer=clean(_reply(error.smtp_code, error.smtp_error)),
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return gettext(
            "The relay %(relay)s can't do this: %(answer)s", relay=where, answer=clean(str(error))
        )
    reached = network_problem(error, where, relay.host, TIMEOUT, clean(str(error)))
    if reached:
        return reached
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return gettext(
            "The relay %(relay)s closed the connection: %(answer)s",
            relay=where,
            answer=clean(str(error)),
        )
    answer = clean(f"{type(error).__name__}: {error}")
    return gettext("Sending through %(relay)s failed: %(answer)s", relay=where, answer=answer)


def network_problem(
    error: BaseException, where: str, host: str, timeout: float, detail: str
) -> str | None:
    """Words for a server that could not be reached or spoken to securely (refused, no
    such host, no answer, TLS), shared by the relay and the text gateway; None for any
    other error. `detail` is the error's own text, already cleared of secrets."""
    if isinstance(error, ConnectionRefusedError):
        return gettext(
            "Connection refused by %(relay)s: nothing is listening there. Check the host "
            "and the port.",
            relay=where,
        )
    if isinstance(error, socket.gaierror):
        return gettext("The host name %(host)s was not found.", host=host)
    if isinstance(error, TimeoutError):
        return gettext(
            "No answer from %(relay)s within %(seconds)s seconds.", relay=where, seconds=timeout
        )
    if isinstance(error, ssl.SSLError):
        return gettext(
            "The secure connection to %(relay)s failed: %(answer)s", relay=where, answer=detail
        )
    return None

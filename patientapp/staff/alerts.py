"""Open safety alerts as every staff page shows them: how many are open and how many are
escalated, the banner's sentences, the "(n)" of the tab title and the red badge favicon.
The escalated line says what happened to the on-call e-mail (sent and when, failed, not
set up, not sent yet), never just "escalated" when nobody may have been told.

Counts only: patient references stay on the board. Besides the counts, `newest` is an
opaque marker of the newest open alert (see `marker`), so a page can tell a new alert from
one acknowledged elsewhere in the same poll, when the count stays the same.
`staff/base.html` reads `for_page()` (server-rendered, so it shows without JavaScript)
and `static/alerts.js` polls the board's blueprint for the same counts
(`GET /staff/alerts.json`, see `staff/views.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from flask import current_app, g
from flask_babel import format_time, ngettext

from patientapp.db import storage
from patientapp.domain.alerts import is_escalated
from patientapp.domain.mail import Relay
from patientapp.domain.records import Alert
from patientapp.web.context import clinic_settings, get_db, now

# How often alerts.js asks (ms). The endpoint is a session check and one small read; see
# bench/alert_latency.py for what it costs and how long an alert takes to show.
POLL_MS = 2000

# The favicon while an alert is open: a red disc with the count in white. "%n" is the count
# (at most two characters); alerts.js fills in the same drawing.
BADGE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<circle cx="16" cy="16" r="16" fill="#a4161a"/>'
    '<text x="16" y="22.5" font-family="Arial,Helvetica,sans-serif" font-size="19" '
    'font-weight="700" text-anchor="middle" fill="#fff">%n</text></svg>'
)
PLAIN_FAVICON = "data:,"

# What happened to the on-call e-mail of the escalated alerts, worst first: the bar names
# the worst one of them (a failure, so someone phones, before a sent one).
MAIL_FAILED = "failed"  # the relay refused it (retrying): nobody was told
MAIL_UNSET = "unset"  # no outgoing mail set up (the default install): nobody is told
MAIL_PENDING = "pending"  # set up, not sent yet (the server's loop runs every 20 s)
MAIL_SENT = "sent"
MAIL_ORDER = (MAIL_FAILED, MAIL_UNSET, MAIL_PENDING, MAIL_SENT)


@dataclass(frozen=True)
class OpenAlerts:
    """How many alerts are open (unacknowledged) and how many of them are escalated."""

    open: int
    escalated: int
    minutes: int  # the Settings limit after which an open alert is escalated
    sound: bool  # Settings: play a tone on staff pages when one arrives
    newest: int = 0  # the newest open alert's `marker` (0: none)
    mail: str = MAIL_UNSET  # the on-call e-mail of the escalated ones (MAIL_ORDER)
    mailed_at: datetime | None = None  # when it was sent (MAIL_SENT: the latest)

    @property
    def text(self) -> str:
        return ngettext(
            "%(num)d safety alert at the front desk",
            "%(num)d safety alerts at the front desk",
            self.open,
        )

    @property
    def escalated_text(self) -> str:
        """What was done about the escalated alerts, as it happened: "escalated" alone
        would tell the desk someone was told when the e-mail failed or is not set up."""
        if self.mail == MAIL_SENT and self.mailed_at is not None:
            return ngettext(
                "Not acknowledged for %(num)d minute: the on-call address was e-mailed at %(time)s",
                "Not acknowledged for %(num)d minutes: the on-call address was e-mailed at "
                "%(time)s",
                self.minutes,
                time=format_time(self.mailed_at, "short"),
            )
        if self.mail == MAIL_FAILED:
            return ngettext(
                "Not acknowledged for %(num)d minute: the e-mail to the on-call address "
                "failed; phone them",
                "Not acknowledged for %(num)d minutes: the e-mail to the on-call address "
                "failed; phone them",
                self.minutes,
            )
        if self.mail == MAIL_PENDING:
            return ngettext(
                "Not acknowledged for %(num)d minute: the on-call e-mail is not sent yet",
                "Not acknowledged for %(num)d minutes: the on-call e-mail is not sent yet",
                self.minutes,
            )
        return ngettext(
            "Not acknowledged for %(num)d minute: no on-call e-mail is set up",
            "Not acknowledged for %(num)d minutes: no on-call e-mail is set up",
            self.minutes,
        )

    @property
    def favicon(self) -> str:
        return badge(self.open) if self.open else PLAIN_FAVICON

    def as_json(self) -> dict:
        """What alerts.json answers: the counts and the banner's words made from them."""
        return {
            "open": self.open,
            "escalated": self.escalated,
            "newest": self.newest,
            "text": self.text if self.open else "",
            "escalated_text": self.escalated_text if self.escalated else "",
        }


def badge_label(count: int) -> str:
    return str(count) if count < 10 else "9+"


def badge(count: int) -> str:
    """The badge favicon as a data: URL (the CSP allows data: images), encoded as the
    script's encodeURIComponent encodes it."""
    svg = BADGE_SVG.replace("%n", badge_label(count))
    return "data:image/svg+xml," + quote(svg, safe="!~*'()")


def marker(alert: Alert) -> int:
    """An opaque number, larger for a later alert: its raise time in whole seconds, then its
    row id (low 20 bits) for two raised in the same second. An alert a worse answer opens
    again is raised anew (its created_at moves on, its id stays), so it counts as newer
    too. Below 2**53, so a script compares it exactly."""
    return (int(alert.created_at.timestamp()) << 20) | (alert.id & 0xFFFFF)


def mail_state(alert: Alert, configured: bool) -> str:
    """What happened to one escalated alert's on-call e-mail (see MAIL_ORDER)."""
    if alert.mail_sent_at is not None:
        return MAIL_SENT
    if not configured:
        return MAIL_UNSET
    return MAIL_FAILED if alert.mail_error else MAIL_PENDING


def mail_told(alerts: Iterable[Alert], configured: bool) -> tuple[str, datetime | None]:
    """The worst state among the escalated alerts' e-mails, and, when every one was sent,
    the latest send."""
    alerts = list(alerts)
    states = {mail_state(alert, configured) for alert in alerts}
    worst = next((state for state in MAIL_ORDER if state in states), MAIL_UNSET)
    sent = [alert.mail_sent_at for alert in alerts if alert.mail_sent_at is not None]
    return worst, (max(sent) if worst == MAIL_SENT else None)


def counts() -> OpenAlerts:
    """The open alerts now, whatever the day (a cancelled visit's alert is not open).
    An alert acknowledged and then reopened (acknowledged_at back to NULL) is open again,
    and counted again by the same rule."""
    settings = clinic_settings()
    minutes = int(settings["escalate_after_minutes"])
    moment = now()
    alerts = [line.alert for line in storage.open_alerts(get_db()) if line.alert is not None]
    escalated = [alert for alert in alerts if is_escalated(alert, moment, minutes)]
    mail, mailed_at = mail_told(escalated, Relay.from_settings(settings).configured)
    return OpenAlerts(
        open=len(alerts),
        escalated=len(escalated),
        minutes=minutes,
        sound=bool(settings["alert_sound"]),
        newest=max((marker(alert) for alert in alerts), default=0),
        mail=mail,
        mailed_at=mailed_at,
    )


def for_page() -> OpenAlerts | None:
    """The counts for the staff layout, read once per page; None for nobody signed in (the
    sign-in pages) or when the database cannot be read (an error page must still show)."""
    if not g.get("user"):
        return None
    if "open_alerts" not in g:
        try:
            g.open_alerts = counts()
        except storage.OPERATIONAL_ERRORS as error:
            current_app.logger.error("open alerts could not be read: %s", type(error).__name__)
            g.open_alerts = None
    return g.open_alerts

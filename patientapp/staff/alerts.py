"""Open safety alerts as every staff page shows them: how many are open and how many are
escalated, the banner's sentences, the "(n)" of the tab title and the red badge favicon.

Counts only: patient references stay on the board. `staff/base.html` reads `for_page()`
(server-rendered, so it shows without JavaScript) and `static/alerts.js` polls the
board's blueprint for the same counts (`GET /staff/alerts.json`, see `staff/views.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from flask import current_app, g
from flask_babel import ngettext

from patientapp.db import storage
from patientapp.domain.alerts import is_escalated
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


@dataclass(frozen=True)
class OpenAlerts:
    """How many alerts are open (unacknowledged) and how many of them are escalated."""

    open: int
    escalated: int
    minutes: int  # the Settings limit after which an open alert is escalated
    sound: bool  # Settings: play a tone on staff pages when one arrives

    @property
    def text(self) -> str:
        return ngettext(
            "%(num)d safety alert at the front desk",
            "%(num)d safety alerts at the front desk",
            self.open,
        )

    @property
    def escalated_text(self) -> str:
        return ngettext(
            "Not acknowledged for %(num)d minute: escalated",
            "Not acknowledged for %(num)d minutes: escalated",
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


def counts() -> OpenAlerts:
    """The open alerts now, whatever the day (a cancelled visit's alert is not open)."""
    settings = clinic_settings()
    minutes = int(settings["escalate_after_minutes"])
    moment = now()
    alerts = [line.alert for line in storage.open_alerts(get_db())]
    return OpenAlerts(
        open=len(alerts),
        escalated=sum(is_escalated(alert, moment, minutes) for alert in alerts),
        minutes=minutes,
        sound=bool(settings["alert_sound"]),
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

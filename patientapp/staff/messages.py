"""The invitation's messages as staff see them: which contact fields a form offers (only
the channels the clinic can send through), and what became of each message, on the
invitation page in full and on the board in one line. Never the address or the number.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import format_datetime, format_time, gettext
from flask_babel import lazy_gettext as _l

from patientapp.db import storage
from patientapp.domain import delivery
from patientapp.web.context import clinic_settings, get_db

CHANNEL_NAMES = {delivery.EMAIL: _l("E-mail"), delivery.SMS: _l("Text")}
KIND_NAMES = {
    (delivery.INVITATION, delivery.EMAIL): _l("Invitation by e-mail"),
    (delivery.INVITATION, delivery.SMS): _l("Invitation by text"),
    (delivery.REMINDER, delivery.EMAIL): _l("Reminder by e-mail"),
    (delivery.REMINDER, delivery.SMS): _l("Reminder by text"),
}


def channels() -> delivery.Channels:
    return delivery.Channels.from_settings(clinic_settings())


def offer_channels(form) -> bool:
    """Drop the contact fields the clinic cannot send through; whether any is left."""
    available = channels()
    if not available.email:
        del form.email
    if not available.sms:
        del form.phone
    return available.email or available.sms


def _when(moment: datetime) -> str:
    return format_datetime(moment, "short")


def message_line(message: dict) -> dict:
    """One message on the invitation page: what, its state in words, and a state name."""
    name = KIND_NAMES[(message["kind"], message["channel"])]
    state = message["state"]
    if state == "sent":
        text = gettext("sent %(when)s", when=_when(message["sent_at"]))
    elif state == "failed":
        text = gettext("not delivered: %(reason)s", reason=message["error"])
    elif state == "cancelled":
        text = gettext("not sent: no longer needed")
    elif message["error"]:
        text = gettext(
            "not sent yet, trying again at %(when)s: %(reason)s",
            when=format_time(message["next_at"], "short"),
            reason=message["error"],
        )
    else:
        text = gettext(
            "to be sent %(when)s",
            when=_when(max(message["due_at"], message["next_at"] or message["due_at"])),
        )
    # One sentence per message, so each language places its own colon.
    return {"text": gettext("%(message)s: %(state)s", message=name, state=text), "state": state}


def visit_messages(visit_id: int) -> dict:
    """The invitation page's view: every message, the link's first opening, opt-out."""
    db = get_db()
    found = storage.messages_of(db, [visit_id])[visit_id]
    opened = storage.link_opened_at(db, [visit_id]).get(visit_id)
    contact = storage.contact(db, visit_id)
    return {
        "lines": [message_line(message) for message in found],
        "opened": _when(opened) if opened else "",
        "opted_out": bool(contact and contact["opted_out_at"]),
    }


def board_lines(visit_ids: list[int]) -> dict[int, str]:
    """For each visit, one short line: each channel's latest message state, and whether
    the patient opened a message's link."""
    db = get_db()
    found = storage.messages_of(db, visit_ids)
    opened = storage.link_opened_at(db, visit_ids)
    lines = {}
    for visit_id, sent in found.items():
        parts = []
        for channel, channel_name in CHANNEL_NAMES.items():
            mine = [m for m in sent if m["channel"] == channel and m["state"] != "cancelled"]
            done = [m for m in mine if m["state"] != "queued" or m["error"]]
            if not done:
                if mine:
                    parts.append(gettext("%(channel)s: to be sent", channel=channel_name))
                continue
            last = done[-1]
            words = {
                "sent": gettext("%(channel)s sent", channel=channel_name),
                "failed": gettext("%(channel)s failed", channel=channel_name),
                "queued": gettext("%(channel)s retrying", channel=channel_name),
            }[last["state"]]
            parts.append(words)
        if visit_id in opened:
            parts.append(
                gettext("link opened %(time)s", time=format_time(opened[visit_id], "short"))
            )
        lines[visit_id] = " · ".join(parts)
    return lines

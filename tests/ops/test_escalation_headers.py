"""The escalation e-mail says its language, and minutes are counted in words that agree
with the number ("1 minute", "2 minutes"): the mail page, the day's safety report and the
escalation's audit entry. E-mails go to the real loopback relay of
tests/ops/test_escalation_mail.py."""

from __future__ import annotations

import html as html_lib
import re

import pytest

from patientapp.db import storage
from tests.conftest import staff_post
from tests.ops import test_escalation_mail as mail_tests
from tests.ops.test_escalation_mail import (
    CLINIC,
    entries,
    raise_alert,
    read,
    run_pass,
    text_of,
    use_relay,
)

# The real loopback relay and the signed-in admin of the escalation mail tests.
admin, relay, relays = mail_tests.admin, mail_tests.relay, mail_tests.relays

TAGS = re.compile(r"<[^>]+>")


def page_words(response) -> str:
    assert response.status_code == 200, response.status_code
    return " ".join(html_lib.unescape(TAGS.sub(" ", response.get_data(as_text=True))).split())


# --- 7c: Content-Language -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "tag", "subject"),
    [
        ("en", "en", f"Safety alert at {CLINIC} not acknowledged"),
        ("pt_BR", "pt-BR", f"Alerta de segurança sem ciência em {CLINIC}"),
    ],
)
def test_the_escalation_mail_says_its_language(app, admin, relay, clock, language, tag, subject):
    """Written in the clinic's default language, and says so as the invitations do."""
    app.config["DEFAULT_LANGUAGE"] = language
    use_relay(admin, relay.port)
    invitation = raise_alert(app)
    clock.advance(minutes=5)
    assert run_pass(app, clock).sent == [invitation.visit_id]
    [envelope] = relay.messages
    message = read(envelope)
    assert message["Content-Language"] == tag
    assert message["Subject"] == subject
    assert message.get_content_type() == "text/plain"


def test_the_relay_test_mail_says_its_language(app, admin, relay):
    use_relay(admin, relay.port)
    response = staff_post(admin, "/staff/admin/mail/test", page="/staff/admin/mail")
    assert response.status_code == 302
    [envelope] = relay.messages
    assert read(envelope)["Content-Language"] == "en"


# --- 7b: one minute, two minutes ----------------------------------------------------------


@pytest.mark.parametrize(("minutes", "said"), [(1, "1 minute"), (2, "2 minutes")])
def test_the_mail_page_and_the_report_count_minutes(app, admin, db, minutes, said):
    storage.save_settings(db, {"escalate_after_minutes": minutes})
    mail_page = page_words(admin.get("/staff/admin/mail"))
    assert f"When a safety alert stays unacknowledged for {said}, the server sends" in mail_page
    assert "1 minutes" not in mail_page
    report = page_words(admin.get("/staff/safety-report?day=2026-11-25"))
    assert f"Escalated after {said} without acknowledgement." in report
    assert "1 minutes" not in report


@pytest.mark.parametrize(("minutes", "detail"), [(1, "1 minute"), (2, "2 minutes")])
def test_the_escalation_entry_counts_minutes(app, admin, relay, clock, db, minutes, detail):
    storage.save_settings(db, {"escalate_after_minutes": minutes})
    use_relay(admin, relay.port)
    invitation = raise_alert(app)
    clock.advance(minutes=minutes)
    assert run_pass(app, clock).escalated == [invitation.visit_id]
    [escalated] = entries(db, "alert_escalated")
    assert escalated["detail"] == f"unacknowledged after {detail}"
    # The e-mail's own words agree with the number too.
    assert f"{detail} ago" in text_of(read(relay.messages[0]))

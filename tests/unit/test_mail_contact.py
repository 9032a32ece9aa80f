"""What a relay answers about a patient's message reaches the audit log, which keeps it
for good: mail.without cuts every spelling of the patient's address out of the relay's
words, and only out of them (the app's own sentence around them stays whole)."""

from __future__ import annotations

import smtplib

import pytest

from patientapp.domain import mail

EMAIL = "River.Patient@Mail.Example"
SMS = "15552017788@sms.example"


@pytest.mark.parametrize(
    ("address", "answer"),
    [
        (EMAIL, "250 2.0.0 Ok: queued as X1 for <river.patient@mail.example>"),
        (EMAIL, "550 5.1.1 RIVER.PATIENT unknown. Try River.Patient."),
        (EMAIL, "550 rcpt=river.patient%40mail.example refused"),
        (EMAIL, "550 RIVER.PATIENT%MAIL.EXAMPLE@relay.clinic.example: no such user"),
        ("jane@jane-doe.name", "550 5.1.2 domain JANE-DOE.NAME does not exist"),
        ("a.b*c(d)+x@x.org", "550 a.b*c(d)+x no such mailbox"),
        (SMS, "550 mailbox 15552017788 unknown"),
        (SMS, "550 5552017788 is not a mobile number"),
        (SMS, "550 number 1-555-201-7788 blocked"),
        (SMS, "550 number (555) 201 7788 blocked"),
        (SMS, "550 number +1 555 201 7788 blocked"),
        ("sms+15552017788@gw.example", "550 mailbox 15552017788 unknown"),  # a template
        ("river+x@mail.example", "550 river+x%40mail.example no such user"),
        ("river+x@mail.example", "550 river+2Bx@mail.example (a delivery report)"),
    ],
)
def test_every_spelling_of_the_patients_address_is_cut(address, answer):
    cut = mail.without(address, answer).lower()
    local, _, domain = address.lower().rpartition("@")
    for spelling in (address.lower(), local, domain, "river", "jane-doe", "201", "x%40"):
        if spelling in address.lower():
            assert spelling not in cut, (answer, cut)
    assert "…" in cut
    assert cut.split()[0] == answer.split()[0]  # the relay's code stays


def test_what_is_not_the_address_stays():
    answer = "250 2.0.0 Ok: queued as 4F2A1 (riverbank rivera.b, id 1234567)"
    assert mail.without("rivera@gmail.com", answer) == answer
    assert mail.without("jo@x.org", "250 jo ok") == "250 jo ok"  # too short to tell apart


def test_the_apps_own_words_around_the_relays_stay_whole(app):
    relay = mail.Relay(host="relay.clinic.example", port=25, sender="reflect@clinic.example")
    refused = smtplib.SMTPRecipientsRefused({"relay@x.org": (550, b"relay@x.org: no relay")})
    with app.test_request_context():
        text = mail.problem(
            relay, refused, oncall=False, clean=lambda t: mail.without("relay@x.org", t)
        )
    assert text.startswith("The relay relay.clinic.example:25 refused the patient's address")
    assert text.endswith("550 …: no …")


@pytest.mark.parametrize(
    ("address", "answer"),
    [
        ("33612345678@sms.example", "550 0612345678 is not a mobile"),
        ("33612345678@sms.example", "550 06 12 34 56 78 is not a mobile"),
        ("447700900123@sms.example", "550 07700 900123 unknown"),
        ("447700900123@sms.example", "550 +44 7700 900123 unknown"),
    ],
)
def test_a_number_written_the_national_way_is_cut_too(address, answer):
    """France and the United Kingdom write a mobile number with a trunk 0 at home."""
    cut = mail.without(address, answer)
    assert cut.startswith("550 …") and not any(c.isdigit() for c in cut[4:]), cut

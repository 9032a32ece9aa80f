"""Guessing typed codes (issue 19, point 7): every code looked up is counted first, in the
same write transaction as the check, so concurrent guesses never overshoot a limit; once
the clinic-wide window is full, codes are looked up only from the waiting room's address
(where a visit was opened lately) within a reserve of their own, so the number of guesses
clinic-wide is bounded however many addresses an attacker has. Lookups are counted by
wrapping storage.visit_by_code_hash, the one place a typed code is looked up."""

from __future__ import annotations

import http.client
import re
import threading

import pytest

from patientapp.db import storage
from patientapp.domain import invitations
from patientapp.web.context import close_thread_db
from tests.conftest import csrf_from, make_invitation
from tests.ops.test_server import serving

WRONG = "ZZZZZ-ZZZZZ"


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """Every code hash looked up, from any thread."""
    seen: list[str] = []
    real = storage.visit_by_code_hash

    def counting(db, code_hash):
        seen.append(code_hash)
        return real(db, code_hash)

    monkeypatch.setattr(storage, "visit_by_code_hash", counting)
    return seen


def browser(app, address: str):
    """A fresh browser (its own cookie) at `address`, with the code page's token."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    token = csrf_from(client.get("/start").get_data(as_text=True))
    return client, token


def type_code(client, token, code):
    return client.post("/start", data={"csrf_token": token, "code": code})


def all_at_once(app, browsers, code=WRONG) -> list[int]:
    """Each browser sends `code` at the same moment, each from its own thread."""
    statuses: list[int] = []
    start = threading.Barrier(len(browsers))

    def guess(client, token):
        try:
            start.wait()
            statuses.append(type_code(client, token, code).status_code)
        finally:
            close_thread_db()  # the thread's own connection

    threads = [threading.Thread(target=guess, args=pair) for pair in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("addresses", [1, 80])
def test_concurrent_wrong_codes_never_overshoot_the_limit(app, lookups, addresses):
    """80 guesses at once, from one address (limit 30 per address) or from 80 (the
    clinic-wide limit set to 30): 30 are looked up, never more."""
    if addresses > 1:
        app.config.update(CODE_FAILURES_GLOBAL=30, CODE_FAILURES_RESERVED=0)
    browsers = [browser(app, f"10.1.0.{n % addresses}") for n in range(80)]
    statuses = all_at_once(app, browsers)
    assert len(lookups) == 30
    assert sorted(statuses) == [422] * 30 + [429] * 50


def test_many_addresses_past_the_clinic_wide_limit_are_not_looked_up(app, lookups):
    app.config.update(CODE_FAILURES_GLOBAL=6, CODE_FAILURES_RESERVED=3)
    statuses = [type_code(*browser(app, f"10.2.{n}.1"), WRONG).status_code for n in range(40)]
    assert statuses == [422] * 6 + [429] * 34
    assert len(lookups) == 6  # 34 addresses later, still the clinic-wide six
    # From the waiting room (a visit was opened there), the reserve goes on, and ends too.
    waiting_room = "10.3.0.1"
    patient, _ = browser(app, waiting_room)
    assert patient.get(f"/v/{make_invitation(app, 'A-2000').token}").status_code == 302
    statuses = [type_code(*browser(app, waiting_room), WRONG).status_code for _ in range(5)]
    assert statuses == [422] * 3 + [429] * 2
    assert len(lookups) == 6 + 3  # CODE_FAILURES_GLOBAL + CODE_FAILURES_RESERVED in all


def test_a_real_patient_still_gets_in_during_a_flood(app, lookups, clock):
    """The link always works; a right code works from the waiting room's address (where a
    visit was opened in the last day); from an address never seen it waits for the window,
    or the patient scans the slip's QR code or asks the front desk."""
    app.config.update(CODE_FAILURES_GLOBAL=6, CODE_FAILURES_RESERVED=3)
    for n in range(10):
        type_code(*browser(app, f"10.4.{n}.1"), WRONG)
    assert len(lookups) == 6  # the clinic-wide window is full
    waiting_room = "10.5.0.1"
    first = make_invitation(app, "A-3000")
    phone, _ = browser(app, waiting_room)
    assert phone.get(f"/v/{first.token}", follow_redirects=True).status_code == 200
    second = make_invitation(app, "A-3001")
    typed = type_code(*browser(app, waiting_room), invitations.format_code(second.code))
    assert typed.status_code == 302 and typed.headers["Location"] == "/welcome"
    elsewhere = make_invitation(app, "A-3002")
    refused = type_code(*browser(app, "10.6.0.1"), elsewhere.code)
    assert refused.status_code == 429  # not looked up: a stranger's address
    clock.advance(minutes=16)  # the window has moved on
    assert type_code(*browser(app, "10.6.0.1"), elsewhere.code).status_code == 302
    # A right code is no failure: its counted rows were taken back.
    with app.app_context():
        from patientapp.web.context import get_db, now

        since = now().replace(hour=0)
        assert storage.count_failures(get_db(), "code-global", "*", since) == 6


def test_an_ipv6_network_counts_as_one_address(app, lookups):
    app.config["CODE_FAILURES_PER_ADDRESS"] = 4
    statuses = [
        type_code(*browser(app, f"2001:db8:1:2::{n:x}"), WRONG).status_code for n in range(6)
    ]
    assert statuses == [422] * 4 + [429] * 2
    assert type_code(*browser(app, "2001:db8:1:3::1"), WRONG).status_code == 422


def test_concurrent_wrong_codes_against_two_server_processes(tmp_path):
    """The way it was found: 80 guesses at once from one address at a real server, here
    with two worker processes; 30 (the per-address limit) are checked, the rest refused
    unchecked (429)."""
    with serving(tmp_path, {"PATIENTAPP_WORKERS": "2", "PATIENTAPP_THREADS": "8"}) as port:
        pages = []
        for _ in range(80):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/start")
            reply = conn.getresponse()
            html = reply.read().decode()
            cookie = re.search(r"patientapp_session=[^;]+", reply.getheader("Set-Cookie"))
            pages.append((conn, cookie.group(0), csrf_from(html)))
        statuses: list[int] = []
        start = threading.Barrier(len(pages))

        def guess(conn, cookie, token):
            body = f"csrf_token={token}&code={WRONG}"
            headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
            start.wait()
            conn.request("POST", "/start", body=body, headers=headers)
            statuses.append(conn.getresponse().status)
            conn.close()

        threads = [threading.Thread(target=guess, args=page) for page in pages]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [422] * 30 + [429] * 50

"""Getting in: invitation links, typed codes, expiry, rate limits, CSRF."""

from __future__ import annotations

from pathlib import Path

import pytest

from patientapp.domain import invitations
from tests.conftest import csrf_from, make_invitation

GENERIC = "We couldn't open a visit with that code."


def type_code(client, code):
    page = client.get("/start")
    return client.post(
        "/start",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "code": code},
        follow_redirects=True,
    )


def test_code_opens_the_visit(client, invitation):
    typed = invitations.format_code(invitation.code).lower()
    page = type_code(client, f" {typed} ")
    assert "Before your visit" in page.get_data(as_text=True)


FULL_WIDTH = str.maketrans(
    {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}  # "A" -> U+FF21, "0" -> U+FF10
)
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))


@pytest.mark.parametrize(
    "keyboard",
    [
        lambda code: code[:5].translate(FULL_WIDTH) + "\uff0d" + code[5:].translate(FULL_WIDTH),
        lambda code: code[:5].translate(ARABIC_INDIC) + " " + code[5:].translate(ARABIC_INDIC),
        lambda code: code[:5] + "\u2013" + code[5:],  # an en dash, as a phone types "--"
        lambda code: code[:5] + "\u2014" + code[5:],  # an em dash
        lambda code: code[:5] + "\u00a0" + code[5:].lower(),  # a no-break space
    ],
    ids=["full-width", "arabic-indic", "en-dash", "em-dash", "no-break-space"],
)
def test_a_code_typed_on_another_scripts_keyboard_opens_the_visit(client, invitation, keyboard):
    """From a patient walk: a code typed in full-width letters from a Chinese keyboard, with
    Arabic-Indic digits, or with a dash a phone made of "--" was refused as not a code."""
    typed = keyboard(invitation.code)
    assert typed != invitation.code
    page = type_code(client, typed)
    assert "Before your visit" in page.get_data(as_text=True)


def test_code_lookalikes_are_forgiven():
    assert invitations.normalise_code("o1lI-abcdef") == "0111ABCDEF"
    assert invitations.normalise_code("ABCDE-FGHJU") is None  # U is not in the alphabet
    assert invitations.normalise_code("ABC") is None


def test_codes_and_tokens_are_strong():
    codes = {invitations.new_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 10 and set(c) <= set(invitations.CROCKFORD) for c in codes)
    assert len(invitations.new_token()) >= 43  # 256 bits in URL-safe base64


def test_only_hashes_are_stored(app, db, invitation):
    # New rows sit in the write-ahead log until a checkpoint, so read every file and every
    # row: the main file alone misses a secret written a moment ago.
    database = Path(app.config["DATABASE"])
    raw = b"".join(path.read_bytes() for path in database.parent.glob(f"{database.name}*"))
    rows = "\n".join(db.conn.iterdump())
    assert invitations.hash_secret(invitation.token) in rows  # the visit is in what was read
    secrets = (invitation.token, invitation.code)
    assert [s for s in secrets if s.encode() in raw or s in rows] == []


@pytest.mark.parametrize("case", ["wrong", "expired", "used", "cancelled"])
def test_one_message_for_every_bad_code(app, client, clock, patient, case, db):
    invitation = make_invitation(app)
    code = invitation.code
    if case == "wrong":
        code = "Z" * 10 if code != "Z" * 10 else "Y" * 10
    elif case == "expired":
        clock.advance(days=1)
    elif case == "used":
        patient.start(invitation.token)
        patient.send()
    elif case == "cancelled":
        db.execute("UPDATE visits SET status = 'cancelled' WHERE id = ?", [invitation.visit_id])
    page = type_code(app.test_client(), code)
    assert page.status_code == 422
    assert GENERIC in page.get_data(as_text=True)


def test_badly_shaped_code_gets_a_hint(client):
    page = type_code(client, "12")
    assert "A code has 10 letters and numbers" in page.get_data(as_text=True)


@pytest.mark.parametrize("case", ["wrong", "expired", "cancelled"])
def test_bad_links(app, client, clock, case, db):
    invitation = make_invitation(app)
    token = invitation.token
    if case == "wrong":
        token = invitations.new_token()
    elif case == "expired":
        clock.advance(hours=15)  # past the end of the appointment day
    else:
        db.execute("UPDATE visits SET status = 'cancelled' WHERE id = ?", [invitation.visit_id])
    page = client.get(f"/v/{token}")
    assert page.status_code == 404
    assert "This link does not work" in page.get_data(as_text=True)


def test_link_valid_until_end_of_appointment_day(app, client, clock):
    invitation = make_invitation(app)
    clock.advance(hours=14, minutes=59)  # 23:59 on the day
    assert "Before your visit" in client.get(
        f"/v/{invitation.token}", follow_redirects=True
    ).get_data(as_text=True)


def test_rate_limit_per_client_then_valid_code_elsewhere_still_works(app, clock):
    invitation = make_invitation(app)
    attacker = app.test_client()
    for _ in range(app.config["CODE_FAILURES_PER_CLIENT"]):
        assert type_code(attacker, "ZZZZZ-ZZZZZ").status_code == 422
    blocked = type_code(attacker, invitations.format_code(invitation.code))
    assert blocked.status_code == 429
    assert "Too many tries" in blocked.get_data(as_text=True)
    # Another phone in the same waiting room (same address) still gets in.
    neighbour = app.test_client()
    assert "Before your visit" in type_code(neighbour, invitation.code).get_data(as_text=True)
    # After the window the first phone may try again.
    clock.advance(minutes=16)
    assert "Before your visit" in type_code(attacker, invitation.code).get_data(as_text=True)


def test_rate_limit_per_address_catches_cookie_droppers(app):
    app.config["CODE_FAILURES_PER_ADDRESS"] = 8
    for _ in range(8):
        type_code(app.test_client(), "ZZZZZ-ZZZZZ")
    assert type_code(app.test_client(), "ZZZZZ-ZZZZZ").status_code == 429
    other_address = app.test_client()
    other_address.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert type_code(other_address, "ZZZZZ-ZZZZZ").status_code == 422


def test_global_rate_limit(app):
    app.config["CODE_FAILURES_GLOBAL"] = 6
    for n in range(6):
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"10.0.1.{n}"
        type_code(c, "ZZZZZ-ZZZZZ")
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = "10.0.2.1"
    assert type_code(c, "ZZZZZ-ZZZZZ").status_code == 429


def test_a_flood_of_wrong_codes_never_keeps_out_a_right_one_in_the_waiting_room(app):
    app.config.update(CODE_FAILURES_GLOBAL=20, CODE_FAILURES_RESERVED=5)
    waiting_room = "10.0.4.1"
    first = app.test_client()  # the morning's first patient opens their link on the Wi-Fi
    first.environ_base["REMOTE_ADDR"] = waiting_room
    assert first.get(f"/v/{make_invitation(app, 'A-1000').token}").status_code == 302
    invitation = make_invitation(app)
    for n in range(20):
        for _ in range(3):  # fresh cookies each time, from twenty addresses
            c = app.test_client()
            c.environ_base["REMOTE_ADDR"] = f"10.0.3.{n}"
            type_code(c, "ZZZZZ-ZZZZZ")
    stranger = app.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "10.0.5.1"
    assert type_code(stranger, "ZZZZZ-ZZZZZ").status_code == 429  # not looked up
    newcomer = app.test_client()
    newcomer.environ_base["REMOTE_ADDR"] = waiting_room
    assert type_code(newcomer, "ZZZZZ-ZZZZZ").status_code == 422  # a typo: looked up
    page = type_code(newcomer, invitations.format_code(invitation.code))
    assert page.status_code == 200 and "Before your visit" in page.get_data(as_text=True)


def test_guessing_any_live_code_in_a_day_is_below_one_in_a_million(app):
    """SECURITY.md's figure: however many addresses send them, at most GLOBAL + RESERVED
    codes are looked up in a window (tests/web/patient/test_code_guessing.py drives it)."""
    cfg = app.config
    windows_per_day = 24 * 60 / cfg["CODE_FAILURE_WINDOW_MINUTES"]
    guesses_per_day = (
        cfg["CODE_FAILURES_GLOBAL"] + cfg["CODE_FAILURES_RESERVED"]
    ) * windows_per_day
    live_codes = 300
    space = len(invitations.CROCKFORD) ** invitations.CODE_LENGTH
    assert guesses_per_day == 38_400
    assert f"{guesses_per_day * live_codes / space:.1e}" == "1.0e-08"
    assert guesses_per_day * live_codes / space < 1e-6


def test_codes_are_shown_in_two_groups_of_five(invitation):
    shown = invitations.format_code(invitation.code)
    assert len(shown) == 11 and shown[5] == "-"
    assert invitations.normalise_code(shown) == invitation.code


def test_post_without_csrf_is_refused_kindly(patient, invitation):
    patient.start(invitation.token)
    response = patient.client.post("/step/1", data={"action": "next", "T2": "hello"})
    assert response.status_code == 400
    assert "for your privacy we couldn" in response.get_data(as_text=True)


def test_csrf_token_outlives_the_default_hour(patient, invitation, clock):
    patient.start(invitation.token)
    html = patient.client.get("/step/1").get_data(as_text=True)
    token = csrf_from(html)
    for _ in range(8):  # eight hours of activity, never idle for 15 minutes
        for _ in range(6):
            clock.advance(minutes=10)
            patient.client.get("/step/1")
    response = patient.client.post("/step/1", data={"csrf_token": token, "action": "next"})
    assert response.status_code == 302


def test_too_large_request_is_refused_kindly(patient, invitation):
    patient.start(invitation.token)
    page = patient.client.get("/step/1")
    response = patient.client.post(
        "/step/1", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "T2": "x" * 100_000}
    )
    assert response.status_code == 413
    assert "more text than we can take" in response.get_data(as_text=True)


def test_unknown_page_is_friendly(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert "We couldn" in response.get_data(as_text=True)


def test_pages_without_a_session_never_show_answers(client):
    for url in ("/welcome", "/step/1", "/review", "/safety"):
        response = client.get(url, follow_redirects=True)
        assert "closed for your privacy" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "/\\evil.example", "https://evil.example/", "/\\/evil.example"]
)
def test_language_switch_never_redirects_off_site(client, target):
    page = client.get("/start")
    response = client.post(
        "/language",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "lang": "es", "next": target},
    )
    assert response.headers["Location"] == "/start"


def test_language_switch_returns_to_the_page(client):
    page = client.get("/start")
    response = client.post(
        "/language",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "lang": "es", "next": "/ended"},
    )
    assert response.headers["Location"] == "/ended"
    assert '<html lang="es"' in client.get("/ended").get_data(as_text=True)

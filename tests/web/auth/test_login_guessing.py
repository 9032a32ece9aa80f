"""Guessing staff sign-ins (issue 19, point 8).

- Someone who knows a staff e-mail cannot keep its owner out: a browser that signed in
  before carries a device cookie (OWASP, "Slow Down Online Guessing Attacks with Device
  Cookies") that locks on strangers do not hold; its own wrong tries end its trust.
- Someone who has a staff password gets at most 3 wrong app codes checked in any 24 hours
  (each matches 3 codes: one step of drift either side), and each further lock lasts
  twice the one before: 9 in a million a day at most, below 1e-5.
- Both locks count each try before checking it, in one write transaction, so concurrent
  tries never overshoot them.

Every time comes from the injected clock.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from itsdangerous import URLSafeSerializer

from patientapp.auth import signin, views
from patientapp.config import DEFAULTS
from patientapp.db import storage
from patientapp.domain import mfa, passwords
from patientapp.web.context import close_thread_db, get_db
from tests.conftest import create_user, csrf_from, enrol, login

PASSWORD = "correct horse battery"
WRONG = "wrong password!!"
EMAIL = "dr@example.org"


@pytest.fixture
def doctor(app):
    return create_user(app, EMAIL, "psychiatrist")


def lock_out_strangers(app, email=EMAIL):
    for _ in range(app.config["LOGIN_FAILURES_PER_ACCOUNT"]):
        assert login(app.test_client(), email, WRONG).status_code == 401


def signed_in_before(app, email=EMAIL, code=None):
    """The owner's own browser: signed in once, then signed out; it keeps its device cookie."""
    browser = app.test_client()
    assert login(browser, email, code=code).status_code == 302
    page = browser.get("/staff/account").get_data(as_text=True)
    browser.post("/staff/logout", data={"csrf_token": csrf_from(page)})
    assert browser.get("/staff/").status_code == 302  # signed out
    assert browser.get_cookie(signin.DEVICE_COOKIE, path="/staff") is not None
    return browser


# --- the device cookie -------------------------------------------------------------------


def test_a_stranger_locking_the_account_does_not_keep_its_owner_out(app, doctor):
    owner = signed_in_before(app)
    lock_out_strangers(app)
    assert login(app.test_client(), EMAIL).status_code == 401  # a stranger, right password
    assert login(owner, EMAIL).status_code == 302  # the browser that signed in before
    assert owner.get("/staff/").status_code == 200
    # Its success ends no lock on strangers.
    assert login(app.test_client(), EMAIL).status_code == 401


def test_the_device_cookie_is_signed_httponly_lax_and_for_the_staff_side(app, doctor):
    app.config["SESSION_COOKIE_SECURE"] = True
    browser = app.test_client()
    response = login(browser, EMAIL)
    [header] = [h for h in response.headers.getlist("Set-Cookie") if signin.DEVICE_COOKIE in h]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" in header
    assert "Path=/staff" in header
    assert f"Max-Age={DEFAULTS['DEVICE_COOKIE_DAYS'] * 86400}" in header


def test_a_forged_or_another_accounts_device_cookie_does_not_pass(app, doctor):
    create_user(app, "other@example.org", "frontdesk")
    others = signed_in_before(app, "other@example.org")
    lock_out_strangers(app)
    assert login(others, EMAIL).status_code == 401  # trusted for another account only
    forged = app.test_client()
    made_up = URLSafeSerializer("not the app's key", salt=signin.DEVICE_SALT).dumps(["x" * 43])
    forged.set_cookie(signin.DEVICE_COOKIE, made_up, path="/staff")
    assert login(forged, EMAIL).status_code == 401
    guessed = app.test_client()  # signed right, but a nonce the server never issued
    real_key = URLSafeSerializer(app.secret_key, salt=signin.DEVICE_SALT)
    guessed.set_cookie(signin.DEVICE_COOKIE, real_key.dumps(["x" * 43]), path="/staff")
    assert login(guessed, EMAIL).status_code == 401


def test_a_copied_device_cookie_stops_at_its_owners_next_sign_in(app, doctor):
    owner = signed_in_before(app)
    copy = app.test_client()
    kept = owner.get_cookie(signin.DEVICE_COOKIE, path="/staff").value
    copy.set_cookie(signin.DEVICE_COOKIE, kept, path="/staff")
    assert login(owner, EMAIL).status_code == 302  # a new nonce; the old one is retired
    lock_out_strangers(app)
    assert login(copy, EMAIL).status_code == 401


def test_a_devices_own_wrong_passwords_end_its_trust(app, doctor):
    owner = signed_in_before(app)
    for _ in range(app.config["LOGIN_FAILURES_PER_DEVICE"]):
        assert login(owner, EMAIL, WRONG).status_code == 401
    # They counted against the device, not the account: a stranger is not locked out...
    assert login(app.test_client(), EMAIL).status_code == 302
    # ...but the device is a stranger now, held by the lock on strangers like any other.
    lock_out_strangers(app)
    assert login(owner, EMAIL).status_code == 401


def test_a_waiting_room_tablet_gets_no_device_cookie(app, doctor):
    browser = app.test_client()
    browser.set_cookie("patientapp_tablet", "1")
    assert login(browser, EMAIL).status_code == 302
    assert browser.get_cookie(signin.DEVICE_COOKIE, path="/staff") is None


def test_turning_a_browser_into_a_waiting_room_tablet_drops_its_device_cookie(app, doctor):
    browser = app.test_client()
    assert login(browser, EMAIL).status_code == 302
    assert browser.get_cookie(signin.DEVICE_COOKIE, path="/staff") is not None
    page = browser.get("/staff/").get_data(as_text=True)
    assert browser.post("/staff/tablet", data={"csrf_token": csrf_from(page)}).status_code == 302
    assert browser.get_cookie(signin.DEVICE_COOKIE, path="/staff") is None


NEW_PASSWORD = "a brand new secret"


def change_password(browser, current: str):
    """The My account form, as its owner fills it in."""
    page = browser.get("/staff/account").get_data(as_text=True)
    data = {"csrf_token": csrf_from(page), "current": current}
    data["password"] = data["confirm"] = NEW_PASSWORD
    return browser.post("/staff/account", data=data)


def test_a_stranger_locking_the_account_does_not_stop_its_owner_changing_the_password(app, doctor):
    owner = app.test_client()
    assert login(owner, EMAIL).status_code == 302
    lock_out_strangers(app)
    assert change_password(owner, PASSWORD).status_code == 302


def test_wrong_current_passwords_are_throttled_for_the_session(app, doctor):
    owner = app.test_client()
    assert login(owner, EMAIL).status_code == 302
    for _ in range(app.config["LOGIN_FAILURES_PER_ACCOUNT"]):
        assert change_password(owner, WRONG).status_code == 422
    assert change_password(owner, PASSWORD).status_code == 422  # refused while locked
    with app.app_context():
        user = storage.get_user(get_db(), doctor)
    assert passwords.verify_password(user["password_hash"], PASSWORD)


@pytest.mark.parametrize("event", ["admin sets a password", "owner changes it"])
def test_a_new_password_ends_the_trust_of_browsers_that_signed_in_before(app, doctor, event):
    """Found by a second reader: a browser that signed in before a password reset kept
    passing the locks on strangers for 30 days."""
    earlier = signed_in_before(app)
    if event == "admin sets a password":
        create_user(app, "boss@example.org", "admin")
        admin = app.test_client()
        assert login(admin, "boss@example.org").status_code == 302
        page = admin.get(f"/staff/admin/users/{doctor}").get_data(as_text=True)
        data = {"csrf_token": csrf_from(page), "password": NEW_PASSWORD}
        data["confirm"] = data["password"]
        response = admin.post(f"/staff/admin/users/{doctor}/password", data=data)
    else:
        owner = app.test_client()
        assert login(owner, EMAIL).status_code == 302
        response = change_password(owner, PASSWORD)
    assert response.status_code == 302
    lock_out_strangers(app)
    assert login(earlier, EMAIL, NEW_PASSWORD).status_code == 401


# --- the second factor -------------------------------------------------------------------


@pytest.fixture
def enrolled(app, clock, doctor):
    app.config["MFA_REQUIRED_ROLES"] = DEFAULTS["MFA_REQUIRED_ROLES"]
    secret, codes = enrol(app, doctor, at=clock() - timedelta(minutes=1))
    return secret, codes


@pytest.fixture
def checked_codes(monkeypatch) -> list[str]:
    """Every app code compared with the account's secret at sign-in."""
    seen: list[str] = []
    real = mfa.matching_step

    def counting(secret, code, at):
        seen.append(code)
        return real(secret, code, at)

    monkeypatch.setattr(mfa, "matching_step", counting)
    return seen


def wrong_code(secret, clock) -> str:
    """A six-digit code that is none of the three the server would take now."""
    near = {mfa.current_code(secret, clock() + timedelta(seconds=s)) for s in (-30, 0, 30)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)


def test_a_day_of_guessing_app_codes_with_the_password_checks_three(
    app, enrolled, clock, checked_codes
):
    """The way it was found: someone with the password tries a code every 5 minutes for
    a day. Before, 5 tries per 15 minutes were checked (288 here, 1.4e-3 a day at the
    limit); now at most 3 in any 24 hours, and the owner's browser still signs in."""
    secret, _codes = enrolled
    owner = signed_in_before(app, code=mfa.current_code(secret, clock()))
    checked_codes.clear()
    for _ in range(24 * 12):
        clock.advance(minutes=5)
        assert login(app.test_client(), EMAIL, code=wrong_code(secret, clock)).status_code == 401
    assert len(checked_codes) == DEFAULTS["MFA_FAILURES_PER_LOCK"] == 3
    codes_matched_per_try = 2 * mfa.WINDOW + 1
    chance_a_day = len(checked_codes) * codes_matched_per_try / 10**mfa.DIGITS
    assert chance_a_day == pytest.approx(9e-6) and chance_a_day < 1e-5
    clock.advance(seconds=30)  # a fresh step: the owner's code is no replay
    assert login(owner, EMAIL, code=mfa.current_code(secret, clock())).status_code == 302


def test_each_further_lock_on_app_codes_lasts_twice_as_long(app, enrolled, clock):
    secret, codes = enrolled
    first = DEFAULTS["MFA_LOCK_HOURS"]

    def try_code(code):
        return login(app.test_client(), EMAIL, code=code)

    def lock_app_codes():
        for _ in range(DEFAULTS["MFA_FAILURES_PER_LOCK"]):
            clock.advance(minutes=10)  # slow enough for the password lock
            assert try_code(wrong_code(secret, clock)).status_code == 401

    lock_app_codes()
    locked_at = clock()
    clock.moment = locked_at + timedelta(hours=first, minutes=-1)
    refused = try_code(mfa.current_code(secret, clock()))
    assert refused.status_code == 401
    assert "codes from the app are not accepted here" in refused.get_data(as_text=True)
    clock.moment = locked_at + timedelta(hours=first)  # the first lock is over...
    lock_app_codes()  # ...and guessing locks again, for twice as long
    locked_again_at = clock()
    clock.moment = locked_again_at + timedelta(hours=2 * first, minutes=-1)
    assert try_code(mfa.current_code(secret, clock())).status_code == 401
    clock.moment = locked_again_at + timedelta(hours=2 * first)
    assert try_code(mfa.current_code(secret, clock())).status_code == 302
    # A successful sign-in makes the next lock the first again.
    clock.advance(hours=first)
    lock_app_codes()
    clock.moment += timedelta(hours=first)
    assert try_code(mfa.current_code(secret, clock())).status_code == 302
    assert codes  # a recovery code works during a lock: tests/web/auth/test_mfa.py


def test_the_lock_length_doubles_up_to_its_cap(app):
    with app.app_context():
        hours = [signin._mfa_lock_length(n).total_seconds() / 3600 for n in range(1, 8)]
    assert hours == [24, 48, 96, 192, 384, 720, 720]


# --- counted before checked, so concurrent tries never overshoot ---------------------------


def all_at_once(jobs) -> list[int]:
    statuses: list[int] = []
    start = threading.Barrier(len(jobs))

    def run(job):
        try:
            start.wait()
            statuses.append(job().status_code)
        finally:
            close_thread_db()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_concurrent_wrong_passwords_are_checked_at_most_the_limit(app, doctor, monkeypatch, db):
    stored = storage.get_user(db, doctor)["password_hash"]
    checked = []
    real = views.verify_password  # as the login route calls it

    def counting(hashed, password):
        if hashed == stored:
            checked.append(password)
        return real(hashed, password)

    monkeypatch.setattr(views, "verify_password", counting)

    def job():
        client = app.test_client()
        token = csrf_from(client.get("/staff/login").get_data(as_text=True))
        data = {"csrf_token": token, "email": EMAIL, "password": WRONG}
        return lambda: client.post("/staff/login", data=data)

    statuses = all_at_once([job() for _ in range(30)])
    assert statuses == [401] * 30
    assert len(checked) == app.config["LOGIN_FAILURES_PER_ACCOUNT"]


def test_concurrent_wrong_app_codes_are_checked_at_most_the_limit(
    app, enrolled, clock, checked_codes
):
    secret, _codes = enrolled
    guess = wrong_code(secret, clock)

    def job():
        client = app.test_client()
        assert login(client, EMAIL).headers["Location"] == "/staff/login/code"
        token = csrf_from(client.get("/staff/login/code").get_data(as_text=True))
        return lambda: client.post("/staff/login/code", data={"csrf_token": token, "code": guess})

    statuses = all_at_once([job() for _ in range(12)])
    assert statuses == [401] * 12
    assert len(checked_codes) == DEFAULTS["MFA_FAILURES_PER_LOCK"]
    right = login(app.test_client(), EMAIL, code=mfa.current_code(secret, clock()))
    assert right.status_code == 401  # strangers' app codes are locked now

"""The second factor (TOTP) for staff: required for admins and psychiatrists, enrolled from
My account, asked for after the password, single-use recovery codes, admin reset, lockout
and replay. Every time comes from the injected clock."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pyotp
import pytest

from patientapp import create_app
from patientapp.config import DEFAULTS
from patientapp.db import storage
from patientapp.domain import mfa, passwords
from patientapp.web.context import get_db
from tests.conftest import checked, create_user, csrf_from, enrol, login, send_code

PASSWORD = "correct horse battery"


@pytest.fixture
def mfa_app(app):
    """The production rule: admins and psychiatrists must have a second factor."""
    app.config["MFA_REQUIRED_ROLES"] = DEFAULTS["MFA_REQUIRED_ROLES"]
    return app


def audit_actions(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [(r["action"], r["detail"]) for r in storage.audit_entries(get_db())]


def post(client, url, data=None, page=None):
    html = client.get(page or url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_from(html), **(data or {})})


def pending_secret(db, user_id) -> str:
    return storage.get_user(db, user_id)["totp_pending"]


def test_the_production_default_requires_admins_and_psychiatrists(tmp_path, monkeypatch):
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"SECRET_KEY": "x", "DATABASE": str(tmp_path / "db.sqlite")})
    assert set(app.config["MFA_REQUIRED_ROLES"]) == {"admin", "psychiatrist"}


# --- enrolment ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "psychiatrist"])
def test_required_roles_are_led_to_enrol_before_any_other_staff_page(mfa_app, client, role):
    create_user(mfa_app, "p@example.org", role)
    response = login(client, "p@example.org")
    assert response.status_code == 302  # the password is enough to reach the set-up page
    for url in ("/staff/", "/staff/account", "/staff/invitations/new", "/staff/admin/users"):
        response = client.get(url)
        assert response.status_code == 302 and response.headers["Location"] == "/staff/account/mfa"
    assert client.get("/staff/board.json").status_code == 403
    assert post(client, "/staff/invitations/new", page="/staff/account/mfa").status_code == 403
    assert client.get("/staff/account/mfa").status_code == 200
    assert post(client, "/staff/logout", page="/staff/account/mfa").status_code == 302


def test_front_desk_needs_it_only_when_the_clinic_says_so(mfa_app, client):
    create_user(mfa_app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    assert client.get("/staff/").status_code == 200
    with mfa_app.app_context():
        storage.save_settings(get_db(), {"mfa_frontdesk": True})
    assert client.get("/staff/").headers["Location"] == "/staff/account/mfa"


def test_the_settings_page_turns_it_on_for_front_desk(app, client, db):
    create_user(app, "boss@example.org", "admin")
    login(client, "boss@example.org")
    form = {
        "clinic_name": "",
        "languages": ["en"],
        "invite_extra_days": "0",
        "patient_idle_minutes": "15",
        "retention_days": "365",
        "escalate_after_minutes": "5",
        "mfa_frontdesk": "y",
    }
    assert post(client, "/staff/admin/settings", form).status_code == 302
    assert storage.get_settings(db)["mfa_frontdesk"] is True
    assert checked(client.get("/staff/admin/settings").get_data(as_text=True), "mfa_frontdesk")


def test_enrolment_shows_a_qr_code_and_the_key_and_needs_a_right_code(mfa_app, client, db, clock):
    user = create_user(mfa_app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    page = client.get("/staff/account/mfa").get_data(as_text=True)
    secret = pending_secret(db, user)
    svg = page.split("<svg", 1)[1].split("</svg>", 1)[0]  # drawn here, nothing fetched
    assert "<path" in svg and "href" not in svg and 'src="http' not in page
    assert mfa.spaced(secret) in page
    assert client.get("/staff/account/mfa").get_data(as_text=True).count(mfa.spaced(secret))
    assert pending_secret(db, user) == secret  # reloading keeps the same key

    wrong = post(client, "/staff/account/mfa", {"code": "000000"})
    assert wrong.status_code == 422 and "not right" in wrong.get_data(as_text=True)
    assert storage.get_user(db, user)["mfa_enrolled_at"] is None

    right = post(client, "/staff/account/mfa", {"code": mfa.current_code(secret, clock())})
    assert right.status_code == 200
    codes = re.findall(r"<code>([0-9a-z]{5}-[0-9a-z]{5})</code>", right.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    account = storage.get_user(db, user)
    assert account["totp_secret"] == secret and account["mfa_enrolled_at"]
    stored = [r["code_hash"] for r in db.query("SELECT code_hash FROM recovery_codes")]
    assert len(stored) == 10 and not set(stored) & {mfa.normalise(c) for c in codes}
    assert ("mfa_enrolled", "") in audit_actions(mfa_app)
    assert client.get("/staff/").status_code == 200
    # Shown once: the page now says it is on, with no codes.
    again = client.get("/staff/account/mfa").get_data(as_text=True)
    assert "is on" in again and codes[0] not in again


def test_enrolment_codes_are_throttled_for_the_session_that_types_them(mfa_app, client, db, clock):
    user = create_user(mfa_app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    client.get("/staff/account/mfa")
    for _ in range(5):
        assert post(client, "/staff/account/mfa", {"code": "000000"}).status_code == 422
    right = mfa.current_code(pending_secret(db, user), clock())
    assert post(client, "/staff/account/mfa", {"code": right}).status_code == 422
    assert storage.get_user(db, user)["mfa_enrolled_at"] is None
    # The count is this session's: it locks no one else out (the key is on its screen).
    assert login(mfa_app.test_client(), "dr@example.org").status_code == 302


def test_a_stranger_locking_the_account_does_not_stop_its_owner_enrolling(
    mfa_app, client, db, clock
):
    """Found by a second reader: wrong sign-ins by someone who only knows the e-mail
    kept the signed-in owner from setting up the second factor, the one page they may
    open before it is set up."""
    user = create_user(mfa_app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    client.get("/staff/account/mfa")
    for _ in range(mfa_app.config["LOGIN_FAILURES_PER_ACCOUNT"]):
        assert login(mfa_app.test_client(), "dr@example.org", "wrong guess!!").status_code == 401
    right = mfa.current_code(pending_secret(db, user), clock())
    assert post(client, "/staff/account/mfa", {"code": right}).status_code == 200
    assert storage.get_user(db, user)["mfa_enrolled_at"]


# --- signing in --------------------------------------------------------------------------


@pytest.fixture
def enrolled(mfa_app, clock):
    """A psychiatrist with a second factor set up a minute ago."""
    user = create_user(mfa_app, "dr@example.org", "psychiatrist")
    secret, codes = enrol(mfa_app, user, at=clock() - timedelta(minutes=1))
    return user, secret, codes


def test_sign_in_asks_for_the_code_after_the_password(mfa_app, client, enrolled, clock):
    _user, secret, _codes = enrolled
    response = login(client, "dr@example.org")
    assert response.headers["Location"] == "/staff/login/code"
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    response = send_code(client, mfa.current_code(secret, clock()))
    assert response.status_code == 302 and response.headers["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200
    assert ("login", "") in audit_actions(mfa_app)


def test_a_wrong_code_is_refused_and_audited(mfa_app, client, enrolled):
    login(client, "dr@example.org")
    response = send_code(client, "123456")
    assert response.status_code == 401 and "not right" in response.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302
    assert ("mfa_failed", "") in audit_actions(mfa_app)


def test_the_code_page_needs_a_right_password_first(mfa_app, client, enrolled, clock):
    assert client.get("/staff/login/code").headers["Location"] == "/staff/login"
    assert login(client, "dr@example.org", "wrong password!!").status_code == 401
    assert client.get("/staff/login/code").headers["Location"] == "/staff/login"


def test_the_code_must_come_within_five_minutes(mfa_app, client, enrolled, clock):
    _user, secret, _codes = enrolled
    login(client, "dr@example.org")
    page = client.get("/staff/login/code").get_data(as_text=True)
    clock.advance(minutes=6)
    response = client.post(
        "/staff/login/code",
        data={"csrf_token": csrf_from(page), "code": mfa.current_code(secret, clock())},
    )
    assert response.headers["Location"] == "/staff/login"
    assert client.get("/staff/").status_code == 302


def test_a_code_works_once_within_its_window(mfa_app, enrolled, clock):
    _user, secret, _codes = enrolled
    code = mfa.current_code(secret, clock())
    assert login(mfa_app.test_client(), "dr@example.org", code=code).status_code == 302
    # Someone who saw it over a shoulder, a few seconds later.
    clock.advance(seconds=5)
    assert login(mfa_app.test_client(), "dr@example.org", code=code).status_code == 401
    # An older code still inside the drift window is refused too, once a newer one was used.
    earlier = mfa.current_code(secret, clock() - timedelta(seconds=30))
    assert login(mfa_app.test_client(), "dr@example.org", code=earlier).status_code == 401
    clock.advance(seconds=30)
    fresh = mfa.current_code(secret, clock())
    assert login(mfa_app.test_client(), "dr@example.org", code=fresh).status_code == 302


def test_one_step_of_clock_drift_is_forgiven_and_no_more(mfa_app, enrolled, clock):
    _user, secret, _codes = enrolled
    clock.advance(minutes=5)
    too_old = mfa.current_code(secret, clock() - timedelta(seconds=90))
    assert login(mfa_app.test_client(), "dr@example.org", code=too_old).status_code == 401
    behind = mfa.current_code(secret, clock() - timedelta(seconds=30))
    assert login(mfa_app.test_client(), "dr@example.org", code=behind).status_code == 302


def test_wrong_codes_count_toward_the_account_lockout(mfa_app, enrolled, clock):
    _user, secret, codes = enrolled
    for _ in range(3):
        assert login(mfa_app.test_client(), "dr@example.org", code="000000").status_code == 401
    for _ in range(2):
        assert login(mfa_app.test_client(), "dr@example.org", "wrong password!!").status_code == 401
    # Three wrong codes and two wrong passwords: the account is locked for strangers.
    assert login(mfa_app.test_client(), "dr@example.org").status_code == 401
    clock.advance(minutes=16)
    # The password lock is over; app codes stay refused to strangers for a day
    # (tests/web/auth/test_login_guessing.py), and a recovery code still signs in.
    right = login(mfa_app.test_client(), "dr@example.org", code=mfa.current_code(secret, clock()))
    assert right.status_code == 401
    assert "codes from the app are not accepted here" in right.get_data(as_text=True)
    assert login(mfa_app.test_client(), "dr@example.org", code=codes[0]).status_code == 302


def test_a_recovery_code_works_once(mfa_app, db, enrolled):
    _user, _secret, codes = enrolled
    typed = codes[3].upper().replace("-", " ")  # case, spaces and dashes are forgiven
    assert login(mfa_app.test_client(), "dr@example.org", code=typed).status_code == 302
    assert login(mfa_app.test_client(), "dr@example.org", code=codes[3]).status_code == 401
    used = db.query("SELECT COUNT(*) AS n FROM recovery_codes WHERE used_at IS NOT NULL")
    assert next(used)["n"] == 1
    assert ("recovery_code_used", "") in audit_actions(mfa_app)
    assert ("login", "recovery code") in audit_actions(mfa_app)
    assert login(mfa_app.test_client(), "dr@example.org", code=codes[4]).status_code == 302


def test_a_made_up_recovery_code_is_refused(mfa_app, enrolled):
    assert login(mfa_app.test_client(), "dr@example.org", code="abcde-fghjk").status_code == 401
    assert ("mfa_failed", "recovery code") in audit_actions(mfa_app)


# --- admin reset -------------------------------------------------------------------------


def test_an_admin_resets_a_second_factor_audited_and_sessions_end(mfa_app, db, enrolled, clock):
    user, secret, _codes = enrolled
    doctor = mfa_app.test_client()
    assert (
        login(doctor, "dr@example.org", code=mfa.current_code(secret, clock())).status_code == 302
    )
    boss = create_user(mfa_app, "boss@example.org", "admin")
    boss_secret, _ = enrol(mfa_app, boss, at=clock() - timedelta(minutes=1))
    admin = mfa_app.test_client()
    login(admin, "boss@example.org", code=mfa.current_code(boss_secret, clock()))
    page = f"/staff/admin/users/{user}"
    assert "Reset second factor" in admin.get(page).get_data(as_text=True)
    response = post(admin, f"{page}/mfa/reset", page=page)
    assert response.status_code == 302
    assert ("mfa_reset", "dr@example.org") in audit_actions(mfa_app)
    account = storage.get_user(db, user)
    assert account["totp_secret"] is None and account["mfa_enrolled_at"] is None
    assert (
        next(db.query("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = ?", [user]))["n"]
        == 0
    )
    assert doctor.get("/staff/").headers["Location"] == "/staff/login?next=/staff/"  # signed out
    again = mfa_app.test_client()
    assert login(again, "dr@example.org").headers["Location"] == "/staff/"
    assert again.get("/staff/").headers["Location"] == "/staff/account/mfa"


def test_front_desk_cannot_reset_a_second_factor(mfa_app, db, enrolled):
    user, _secret, _codes = enrolled
    create_user(mfa_app, "desk@example.org", "frontdesk")
    desk = mfa_app.test_client()
    login(desk, "desk@example.org")
    response = post(desk, f"/staff/admin/users/{user}/mfa/reset", page="/staff/")
    assert response.status_code == 403
    assert storage.get_user(db, user)["totp_secret"]


def test_bad_input_on_the_code_page_gets_a_clear_answer(mfa_app, client, enrolled, clock):
    _user, secret, _codes = enrolled
    login(client, "dr@example.org")
    empty = send_code(client, "")
    assert empty.status_code == 400 and "Please enter the code." in empty.get_data(as_text=True)
    for typed in ("abc", "\uff11\uff12\uff13\uff14\uff15\uff16", "x" * 40):
        assert send_code(client, typed).status_code == 401
    assert send_code(client, mfa.current_code(secret, clock())).status_code == 302


def test_a_locked_account_gets_no_further_with_a_right_code(mfa_app, client, enrolled, clock):
    _user, secret, _codes = enrolled
    login(client, "dr@example.org")  # the password was right before the lock
    for _ in range(5):
        send_code(client, "000000")
    assert send_code(client, mfa.current_code(secret, clock())).status_code == 401


def test_a_tampered_pending_sign_in_goes_back_to_the_password(mfa_app, client, enrolled):
    login(client, "dr@example.org")
    with client.session_transaction() as cookie:
        cookie["staff_pending"] = {"user": "someone", "at": "yesterday"}
    assert client.get("/staff/login/code").headers["Location"] == "/staff/login"


def test_enrolment_refuses_what_is_not_a_code(mfa_app, client, db):
    create_user(mfa_app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    for typed in ("", "12345", "abcdef"):
        assert post(client, "/staff/account/mfa", {"code": typed}).status_code == 422
    assert storage.get_user(db, 1)["mfa_enrolled_at"] is None


def test_a_reset_without_the_form_token_changes_nothing(mfa_app, db, enrolled, clock):
    user, _secret, _codes = enrolled
    create_user(mfa_app, "boss@example.org", "admin")
    mfa_app.config["MFA_REQUIRED_ROLES"] = ()
    admin = mfa_app.test_client()
    login(admin, "boss@example.org")
    assert admin.post(f"/staff/admin/users/{user}/mfa/reset").status_code == 400
    assert storage.get_user(db, user)["totp_secret"]


def test_recovery_codes_are_argon2id_hashes_in_production(app):
    app.config["PASSWORD_HASHER"] = "argon2"
    with app.test_request_context():
        stored = passwords.hash_recovery_code("abcde12345")
        assert stored.startswith("$argon2id$") and "m=19456,t=2,p=1" in stored
        assert passwords.verify_password(stored, "abcde12345")
        assert not passwords.verify_password(stored, "abcde12346")


@pytest.fixture
def server_on_utc(monkeypatch):
    """The server's own zone is UTC, as on most servers (and in CI)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("zone", ["Europe/Madrid", "America/Chicago", "Asia/Kolkata"])
def test_codes_count_real_time_whatever_the_clinic_time_zone(
    mfa_app, client, db, clock, server_on_utc, zone
):
    """Found on a walk: with the clinic's time zone set in Settings (the server on UTC),
    every code from an authenticator app was refused, for enrolling and for signing in,
    because the clinic's local time was read as the server's. The app on the phone
    counts real time and knows no zone."""
    storage.save_settings(db, {"time_zone": zone})
    user = create_user(mfa_app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    client.get("/staff/account/mfa")
    phone = pyotp.TOTP(pending_secret(db, user))  # the authenticator app

    def instant():  # the moment the clinic's clocks show now
        return clock().replace(tzinfo=ZoneInfo(zone))

    right = post(client, "/staff/account/mfa", {"code": phone.at(instant())})
    assert right.status_code == 200, right.get_data(as_text=True)
    assert storage.get_user(db, user)["mfa_enrolled_at"] is not None
    post(client, "/staff/logout", page="/staff/account")
    clock.advance(minutes=1)
    assert login(client, "dr@example.org").headers["Location"] == "/staff/login/code"
    response = send_code(client, phone.at(instant()))
    assert response.status_code == 302 and response.headers["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200

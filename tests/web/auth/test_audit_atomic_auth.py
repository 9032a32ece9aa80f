"""Every audited change on the staff sign-in side is written with its audit entry in one
transaction (issue 19, point 10): when the audit row cannot be written ("database is
locked"), the page answers 503 and nothing of the change is left in the database."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from patientapp.config import DEFAULTS
from patientapp.db import storage
from patientapp.domain import mfa
from tests.conftest import create_user, csrf_from, enrol, login, post_setup, setup_link

EMAIL = "dr@example.org"
NOT_SAVED = "The database could not save just now, so this change was not saved."


@pytest.fixture
def audit_fails(monkeypatch):
    def locked(*_args, **_kwargs):
        raise sqlite3.OperationalError("database is locked")

    return lambda: monkeypatch.setattr(storage, "audit", locked)


def refused(response) -> bool:
    return response.status_code == 503 and NOT_SAVED in response.get_data(as_text=True)


def sessions(db) -> list[dict]:
    return list(db.query("SELECT * FROM staff_sessions"))


def post(client, url, data, page=None):
    html = client.get(page or url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_from(html), **data})


def test_a_password_change_is_not_kept_without_its_audit_entry(app, db, client, audit_fails):
    user = create_user(app, EMAIL, "psychiatrist")
    login(client, EMAIL)
    elsewhere = app.test_client()
    login(elsewhere, EMAIL)
    before = storage.get_user(db, user)["password_hash"]
    audit_fails()
    new = "a brand new passphrase"
    response = post(
        client,
        "/staff/account",
        {"current": "correct horse battery", "password": new, "confirm": new},
    )
    assert refused(response)
    assert storage.get_user(db, user)["password_hash"] == before
    assert [s["ended_at"] for s in sessions(db)] == [None, None]  # no session was ended
    assert elsewhere.get("/staff/").status_code == 200


def test_an_enrolment_is_not_kept_without_its_audit_entry(app, db, client, clock, audit_fails):
    app.config["MFA_REQUIRED_ROLES"] = DEFAULTS["MFA_REQUIRED_ROLES"]
    user = create_user(app, EMAIL, "psychiatrist")
    login(client, EMAIL)
    client.get("/staff/account/mfa")
    secret = storage.get_user(db, user)["totp_pending"]
    audit_fails()
    response = post(client, "/staff/account/mfa", {"code": mfa.current_code(secret, clock())})
    assert refused(response)
    account = storage.get_user(db, user)
    assert account["mfa_enrolled_at"] is None and account["totp_secret"] is None
    assert account["totp_pending"] == secret
    assert next(db.query("SELECT COUNT(*) AS n FROM recovery_codes"))["n"] == 0


def test_a_sign_in_is_not_kept_without_its_audit_entry(app, db, client, audit_fails):
    create_user(app, EMAIL, "psychiatrist")
    audit_fails()
    assert refused(login(client, EMAIL))
    assert sessions(db) == []
    assert next(db.query("SELECT COUNT(*) AS n FROM trusted_devices"))["n"] == 0
    assert client.get("/staff/").status_code == 302  # not signed in


def test_a_sign_in_with_a_code_is_not_kept_without_its_audit_entry(
    app, db, client, clock, audit_fails
):
    app.config["MFA_REQUIRED_ROLES"] = DEFAULTS["MFA_REQUIRED_ROLES"]
    user = create_user(app, EMAIL, "psychiatrist")
    secret, codes = enrol(app, user, at=clock() - timedelta(minutes=1))
    step = storage.get_user(db, user)["totp_last_step"]
    audit_fails()
    assert refused(login(client, EMAIL, code=mfa.current_code(secret, clock())))
    assert refused(login(app.test_client(), EMAIL, code=codes[0]))
    assert sessions(db) == []
    assert storage.get_user(db, user)["totp_last_step"] == step  # the code is not used up
    assert (
        next(db.query("SELECT COUNT(*) AS n FROM recovery_codes WHERE used_at IS NOT NULL"))["n"]
        == 0
    )


def test_a_sign_out_is_not_kept_without_its_audit_entry(app, db, client, audit_fails):
    create_user(app, EMAIL, "psychiatrist")
    login(client, EMAIL)
    audit_fails()
    assert refused(post(client, "/staff/logout", {}, page="/staff/"))
    assert [s["ended_at"] for s in sessions(db)] == [None]
    assert client.get("/staff/").status_code == 200  # still signed in: try again


def test_the_first_admin_is_not_kept_without_its_audit_entry(app, db, client, audit_fails):
    link = setup_link(app)
    audit_fails()
    assert refused(post_setup(client, link))
    assert storage.count_users(db) == 0 and sessions(db) == []
    assert client.get(link).status_code == 200  # the link still works

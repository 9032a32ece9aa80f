"""Weak passwords are refused everywhere a password is set (ASVS V2.1.7): common ones, ones
built from the person's own details, and ones zxcvbn finds easy to guess; each with a
message that says why."""

from __future__ import annotations

import pytest

from patientapp.db import storage
from patientapp.domain import accounts, passwords
from patientapp.web.context import get_db, now
from tests.conftest import create_user, csrf_from, login, post_setup, setup_link

GOOD = "correct horse battery"
COMMON = "on a list of common passwords"
PERSONAL = "built from your email address, your name or the clinic"
GUESSABLE = "too easy to guess"

# (password, why it is refused) for someone called Ada Lovelace, ada.lovelace@example.org,
# at the Riverside Mood Clinic.
WEAK = [
    ("password12", COMMON),
    ("1234567890", COMMON),
    ("qwertyuiop", COMMON),
    ("Password123", COMMON),
    ("ada.lovelace@example.org", PERSONAL),
    ("ADA.LOVELACE@EXAMPLE.ORG", PERSONAL),
    ("lovelace2026", PERSONAL),
    ("adalovelace!", PERSONAL),
    ("riverside123", PERSONAL),
    ("aaaaaaaaaaaa", GUESSABLE),
    ("abcdefghijkl", GUESSABLE),
    ("2026-11-25!!", GUESSABLE),
]
DETAILS = ("ada.lovelace@example.org", "Ada Lovelace", "Riverside Mood Clinic")


def problem(app, password, details=DETAILS):
    with app.test_request_context():
        return passwords.password_problem(password, details)


@pytest.mark.parametrize(("password", "why"), WEAK)
def test_weak_passwords_are_refused_with_the_reason(app, password, why):
    assert why in problem(app, password)


@pytest.mark.parametrize("password", [GOOD, "tulip-harbor-2026", "a brand new secret"])
def test_a_few_unrelated_words_pass(app, password):
    assert problem(app, password) is None


def test_the_minimum_length_still_comes_first(app):
    assert "at least 10 characters" in problem(app, "password")


def test_the_common_list_is_a_real_one(app):
    assert len(passwords.COMMON_PASSWORDS) >= 10_000
    assert {"123456", "password", "qwerty", "letmein"} <= passwords.COMMON_PASSWORDS


def test_a_long_password_is_checked_quickly_and_fully(app):
    # zxcvbn reads at most 72 characters; the rest cannot make the start weak.
    assert problem(app, "x" * 500) is not None
    assert problem(app, "correct horse battery " * 20) is None


def test_personal_words_are_the_pieces_of_the_details(app):
    words = passwords.personal_words("ada.lovelace@example.org", "Dr. Li")
    assert {"ada", "lovelace", "ada.lovelace", "ada.lovelace@example.org"} <= set(words)
    assert "li" not in words  # too short to refuse
    assert "riverside" in passwords.personal_words("desk@riverside.org")
    assert PERSONAL in problem(app, "riverside2026!", ("desk@riverside.org",))


def _form(client, url, data, page=None):
    html = client.get(page or url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_from(html), **data})


def test_first_admin_setup_refuses_a_password_from_the_email(app, client, db):
    link = setup_link(app)
    response = post_setup(client, link, email="boss@example.org", password="boss@example.org")
    assert response.status_code == 422
    assert PERSONAL in response.get_data(as_text=True)
    assert storage.count_users(db) == 0
    response = post_setup(client, link, password="1234567890")
    assert response.status_code == 422 and COMMON in response.get_data(as_text=True)


def test_new_user_form_refuses_common_and_personal_passwords(app, client, db):
    create_user(app, "boss@example.org", "admin")
    login(client, "boss@example.org")
    for password, why in [("password12", COMMON), ("grace.hopper!", PERSONAL)]:
        response = _form(
            client,
            "/staff/admin/users",
            {
                "email": "grace.hopper@example.org",
                "display_name": "Grace Hopper",
                "role": "psychiatrist",
                "password": password,
            },
        )
        assert response.status_code == 422
        assert why in response.get_data(as_text=True)
        assert 'value="grace.hopper@example.org"' in response.get_data(as_text=True)
    assert storage.user_by_email(db, "grace.hopper@example.org") is None


def test_admin_reset_refuses_the_target_persons_own_email(app, client, db):
    create_user(app, "boss@example.org", "admin")
    target = create_user(app, "grace.hopper@example.org", "psychiatrist", name="Grace Hopper")
    login(client, "boss@example.org")
    page = f"/staff/admin/users/{target}"
    before = storage.get_user(db, target)["password_hash"]
    for password, why in [("grace.hopper@example.org", PERSONAL), ("1234567890", COMMON)]:
        response = _form(client, f"{page}/password", {"password": password}, page=page)
        assert response.status_code == 422 and why in response.get_data(as_text=True)
    assert storage.get_user(db, target)["password_hash"] == before


def test_change_password_refuses_weak_ones_and_keeps_the_old(app, client, db):
    user = create_user(app, "grace.hopper@example.org", "frontdesk", name="Grace Hopper")
    login(client, "grace.hopper@example.org")
    before = storage.get_user(db, user)["password_hash"]
    for password, why in [
        ("password12", COMMON),
        ("1234567890", COMMON),
        ("grace.hopper@example.org", PERSONAL),
    ]:
        response = _form(
            client, "/staff/account", {"current": GOOD, "password": password, "confirm": password}
        )
        assert response.status_code == 422 and why in response.get_data(as_text=True)
    assert storage.get_user(db, user)["password_hash"] == before


def test_create_account_and_the_command_refuse_the_clinic_name(app, db, runner):
    with app.test_request_context():
        storage.save_settings(get_db(), {"clinic_name": "Riverside Mood Clinic"})
    with app.test_request_context(), pytest.raises(accounts.AccountError, match=PERSONAL):
        accounts.create_account(
            get_db(), email="new@example.org", password="riverside2026", role="admin", now=now()
        )
    result = runner.invoke(
        args=["create-user", "--role", "admin", "new@example.org"], input="password12\n"
    )
    assert result.exit_code != 0 and COMMON in result.output
    assert storage.count_users(db) == 0


def test_messages_are_translated(app, client):
    link = setup_link(app)
    client.get("/?lang=fr")
    page = client.get(link + "?lang=fr")
    response = client.post(
        link + "?lang=fr",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "email": "boss@example.org",
            "display_name": "Boss",
            "password": "1234567890",
            "confirm": "1234567890",
        },
    )
    assert response.status_code == 422
    assert COMMON not in response.get_data(as_text=True)

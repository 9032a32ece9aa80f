"""Staff accounts: one create_account with one email rule and one password rule, used by
the setup link, the Users page and the create-user command."""

from __future__ import annotations

import pytest

from patientapp.db import storage
from patientapp.domain import accounts
from patientapp.web.context import get_db, now
from tests.conftest import create_user, csrf_from, login, post_setup, setup_link

PASSWORD = "correct horse battery"


def new_account(app, **fields) -> int:
    values = {"email": "new@example.org", "password": PASSWORD, "role": "psychiatrist"}
    with app.test_request_context():
        return accounts.create_account(get_db(), now=now(), **{**values, **fields})


def test_create_account_returns_the_new_id(app, db):
    user_id = new_account(app, email="  dr.new@example.org ", display_name="Dr. New")
    account = storage.get_user(db, user_id)
    assert account["email"] == "dr.new@example.org" and account["display_name"] == "Dr. New"
    assert account["role"] == "psychiatrist" and account["active"]


@pytest.mark.parametrize(
    ("fields", "reason", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "email", "like name@example.org"),
        ({"email": "a b@example.org"}, "email", "email", "like name@example.org"),
        ({"email": "a@" + "b" * 200 + ".org"}, "email", "email", "like name@example.org"),
        ({"password": "too short"}, "password", "password", "at least 10 characters"),
        ({"email": "TAKEN@example.org"}, "duplicate", "email", "already an account"),
    ],
)
def test_create_account_refuses_and_writes_nothing(app, db, fields, reason, field, message):
    new_account(app, email="taken@example.org")
    with pytest.raises(accounts.AccountError, match=message) as refused:
        new_account(app, **fields)
    assert (refused.value.reason, refused.value.field) == (reason, field)
    assert storage.count_users(db) == 1


def test_create_account_knows_only_the_three_roles(app, db):
    with pytest.raises(ValueError, match="unknown role"):
        new_account(app, role="owner")
    assert storage.count_users(db) == 0


def test_setup_link_refuses_a_malformed_email(app, client, db):
    link = setup_link(app)
    response = post_setup(client, link, email="boss at example.org")
    assert response.status_code == 422
    assert "like name@example.org" in response.get_data(as_text=True)
    assert storage.count_users(db) == 0
    assert client.get(link).status_code == 200  # the link still works


def test_the_real_argon2_hasher_signs_in_and_refuses_a_wrong_password(app, runner, db):
    app.config["PASSWORD_HASHER"] = "argon2"  # the production default; tests use "fast"
    result = runner.invoke(args=["create-user", "--role", "admin", "a@example.org"], input=PASSWORD)
    assert result.exit_code == 0, result.output
    assert storage.user_by_email(db, "a@example.org")["password_hash"].startswith("$argon2id$")
    assert login(app.test_client(), "a@example.org", PASSWORD).status_code == 302
    assert login(app.test_client(), "a@example.org", "wrong password!").status_code == 401
    assert login(app.test_client(), "nobody@example.org", PASSWORD).status_code == 401


def test_a_damaged_hash_refuses_instead_of_failing(app, db):
    user_id = new_account(app, email="a@example.org")
    storage.update_user(db, user_id, password_hash="$argon2id$not-a-hash")
    assert login(app.test_client(), "a@example.org", PASSWORD).status_code == 401


def test_an_address_taken_a_moment_ago_is_refused_as_a_duplicate(app, db, monkeypatch):
    new_account(app, email="taken@example.org")
    monkeypatch.setattr(storage, "user_by_email", lambda _db, _email: None)  # the check raced
    with pytest.raises(accounts.AccountError) as refused:
        new_account(app, email="taken@example.org")
    assert refused.value.reason == "duplicate"
    assert storage.count_users(db) == 1


def test_a_too_long_email_on_the_users_page_gets_one_message(app, client):
    create_user(app, "boss@example.org", "admin")
    login(client, "boss@example.org")
    page = client.get("/staff/admin/users").get_data(as_text=True)
    response = client.post(
        "/staff/admin/users",
        data={
            "csrf_token": csrf_from(page),
            "email": "a@" + "b" * 200 + ".org",
            "display_name": "Long",
            "role": "frontdesk",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert page.count("Please keep this to 200 characters or fewer.") == 1
    assert "like name@example.org" not in page

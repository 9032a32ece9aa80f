"""Staff accounts: one create_account with one email rule and one password rule, used by
the setup link, the Users page and the create-user command."""

from __future__ import annotations

import pytest
from conftest import csrf_from

from patientapp import auth, storage
from patientapp.web import get_db

PASSWORD = "correct horse battery"


def new_account(app, **fields) -> int:
    values = {"email": "new@example.org", "password": PASSWORD, "role": "psychiatrist"}
    with app.test_request_context():
        return auth.create_account(get_db(), **{**values, **fields})


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
    with pytest.raises(auth.AccountError, match=message) as refused:
        new_account(app, **fields)
    assert (refused.value.reason, refused.value.field) == (reason, field)
    assert storage.count_users(db) == 1


def test_create_account_knows_only_the_three_roles(app, db):
    with pytest.raises(ValueError, match="unknown role"):
        new_account(app, role="owner")
    assert storage.count_users(db) == 0


def test_setup_link_refuses_a_malformed_email(app, client, db):
    with app.test_request_context():
        token = auth.issue_setup_token(get_db())
    page = client.get(f"/staff/setup/{token}")
    response = client.post(
        f"/staff/setup/{token}",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "email": "boss at example.org",
            "display_name": "Boss",
            "password": "long enough pw",
            "confirm": "long enough pw",
        },
    )
    assert response.status_code == 422
    assert "like name@example.org" in response.get_data(as_text=True)
    assert storage.count_users(db) == 0
    assert client.get(f"/staff/setup/{token}").status_code == 200  # the link still works

"""The language chosen on the sign-in page stays after signing in: signing in starts a
fresh session cookie (nothing else of the old one is kept), but the language is the
person's own choice, not a secret."""

from __future__ import annotations

from tests.conftest import create_user, csrf_from, enrol, login, send_code


def page_language(response) -> str:
    html = response.get_data(as_text=True)
    return html.split('<html lang="', 1)[1].split('"', 1)[0]


def test_a_password_sign_in_keeps_the_language_chosen_before(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    assert page_language(client.get("/staff/login?lang=ar")) == "ar"
    assert login(client, "desk@example.org").status_code == 302
    assert page_language(client.get("/staff/")) == "ar"


def test_a_sign_in_with_a_code_keeps_it_too(app, client, clock):
    from patientapp.domain import mfa

    user = create_user(app, "dr@example.org", "psychiatrist")
    secret, _codes = enrol(app, user)
    client.get("/staff/login?lang=zh_Hans")
    assert login(client, "dr@example.org").headers["Location"] == "/staff/login/code"
    clock.advance(minutes=1)
    assert send_code(client, mfa.current_code(secret, clock())).status_code == 302
    assert page_language(client.get("/staff/")) == "zh-Hans"


def test_nothing_else_of_the_old_session_is_kept(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    before = csrf_from(client.get("/staff/login?lang=es").get_data(as_text=True))
    login(client, "desk@example.org")
    after = csrf_from(client.get("/staff/account").get_data(as_text=True))
    assert before.split(".")[0] != after.split(".")[0]  # a new CSRF secret

"""Staff sign-in with the clinic's OpenID Provider, against a real one on loopback
(tests/oidc_provider: oidc-provider, run by node): the person signs in on its own login
page over HTTP, and the app gets the callback the provider sends the browser back with.

Each test's app is new, so it fetches the provider's discovery document and keys afresh.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests
from joserfc.errors import BadSignatureError

from patientapp.auth.sessions import PENDING_KEY
from patientapp.config import DEFAULTS
from patientapp.db import storage
from patientapp.domain import mfa, retention
from patientapp.web.context import get_db
from tests.conftest import create_user, enrol, login, send_code, staff_post
from tests.helpers.oidc_provider import (
    FORM_ACTION,
    HIDDEN,
    OpenIDProvider,
    available,
    sign_in_at_provider,
)

APP_URL = "http://127.0.0.1:5999"  # the app's PATIENTAPP_BASE_URL here (never requested)


@pytest.fixture(scope="module")
def oidc(tmp_path_factory):
    available()
    # Signing out there needs the ID token back, as at Okta.
    provider = OpenIDProvider(
        tmp_path_factory.mktemp("oidc"), APP_URL, logout_needs_id_token_hint=True
    ).start()
    yield provider
    provider.stop()


@pytest.fixture
def sso(app, oidc):
    app.config.update(oidc.app_config(), BASE_URL=APP_URL)
    return app


def audit(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [(r["action"], r["detail"]) for r in storage.audit_entries(get_db())][::-1]


def settings(app, **values) -> None:
    with app.app_context():
        storage.save_settings(get_db(), values)


SIGN_IN_LINK = re.compile(
    r'<a class="button primary" href="([^"]*/staff/(?:login/provider|link/)[^"]*)">'
)


def to_provider(client, page: str = "/staff/login") -> str:
    """Follow "Sign in with Clinic ID" on `page`: the provider's authorization address."""
    html = client.get(page).get_data(as_text=True)
    response = client.get(unescape(SIGN_IN_LINK.search(html).group(1)))
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def back(client, callback: str):
    """The browser arriving at the app's callback address."""
    parts = urlsplit(callback)
    return client.get(f"{parts.path}?{parts.query}")


def provider_sign_in(client, login_name: str, page: str = "/staff/login"):
    return back(client, sign_in_at_provider(to_provider(client, page), login_name))


def with_query(callback: str, **changes) -> str:
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def text(response) -> str:
    return response.get_data(as_text=True)


# --- the way in ----------------------------------------------------------------------------


def test_the_sign_in_page_offers_the_provider_only_when_it_is_configured(app, oidc, client):
    assert "Sign in with" not in text(client.get("/staff/login"))
    assert client.get("/staff/login/provider").status_code == 404
    assert client.get("/staff/login/provider/callback?code=x&state=y").status_code == 404
    app.config.update(oidc.app_config(), BASE_URL=APP_URL)
    page = client.get("/staff/login")
    assert "Sign in with Clinic ID" in text(page)
    assert "Or sign in with a password" in text(page)
    # Signing out posts to us, and we redirect to the provider: the pages' form-action
    # allows the provider's origin, and nothing else.
    policy = page.headers["Content-Security-Policy"]
    assert f"form-action 'self' {oidc.origin};" in policy
    assert "frame-ancestors 'none'" in policy


def test_the_authorization_request_uses_pkce_state_and_nonce(sso, client, oidc):
    address = urlsplit(to_provider(client))
    query = {k: v[0] for k, v in parse_qs(address.query).items()}
    assert f"{address.scheme}://{address.netloc}" == oidc.issuer
    assert query["response_type"] == "code"
    assert query["client_id"] == "patientapp-staff"
    assert query["redirect_uri"] == APP_URL + "/staff/login/provider/callback"
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256
    assert len(query["state"]) >= 20
    assert len(query["nonce"]) >= 20


def test_a_linked_identity_signs_in_and_the_session_knows_how(sso, client, oidc):
    ada = create_user(sso, "ada@example.org", "psychiatrist")
    settings(sso, provider_link_by_email=True)
    response = provider_sign_in(client, "ada")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200
    with sso.app_context():
        [identity] = storage.user_identities(get_db(), ada)
        assert (identity["issuer"], identity["subject"]) == (oidc.issuer, "ada")
        assert identity["linked_how"] == "verified e-mail"
        [row] = get_db().execute("SELECT provider, provider_mfa FROM staff_sessions").fetchall()
    assert tuple(row) == (oidc.issuer, 0)
    assert ("provider_linked", "verified e-mail") in audit(sso)
    assert ("login", "sign-in service") in audit(sso)

    # Later sign-ins find the identity by issuer and subject, whatever the setting says.
    settings(sso, provider_link_by_email=False)
    other = sso.test_client()
    assert provider_sign_in(other, "ada").headers["Location"] == "/staff/"


def test_the_page_asked_for_before_signing_in_opens_after(sso, client):
    create_user(sso, "ada@example.org", "psychiatrist")
    settings(sso, provider_link_by_email=True)
    response = provider_sign_in(client, "ada", page="/staff/login?next=/staff/account")
    assert response.headers["Location"] == "/staff/account"


def test_nobody_is_created_and_an_unknown_subject_is_told_to_ask_an_admin(sso, client):
    create_user(sso, "ada@example.org", "psychiatrist")  # linking by e-mail is off
    response = provider_sign_in(client, "ada")
    assert response.status_code == 403
    assert "not linked to an account here" in text(response)
    assert client.get("/staff/").status_code == 302  # not signed in
    assert ("provider_login_failed", "unknown subject (ada@example.org)") in audit(sso)
    with sso.app_context():
        assert storage.count_users(get_db()) == 1
    stranger = sso.test_client()
    assert provider_sign_in(stranger, "someone-else").status_code == 403
    assert ("provider_login_failed", "unknown subject") in audit(sso)


def test_an_unverified_e_mail_links_nothing(sso, client):
    create_user(sso, "bo@example.org", "frontdesk")
    settings(sso, provider_link_by_email=True)
    assert provider_sign_in(client, "bo").status_code == 403  # email_verified is false
    assert ("provider_login_failed", "unknown subject (bo@example.org)") in audit(sso)


def test_a_deactivated_account_stays_out(sso, client):
    ada = create_user(sso, "ada@example.org", "psychiatrist")
    settings(sso, provider_link_by_email=True)
    assert provider_sign_in(client, "ada").status_code == 302
    with sso.app_context(), storage.write(get_db()) as db:
        storage.update_user(db, ada, active=0)
    response = provider_sign_in(sso.test_client(), "ada")
    assert response.status_code == 403
    assert ("provider_login_failed", "account deactivated") in audit(sso)


# --- an admin's link -----------------------------------------------------------------------


def make_link(app, client, user_id: int) -> str:
    response = staff_post(client, f"/staff/admin/users/{user_id}/provider-link")
    assert response.status_code == 200
    match = re.search(r'<code class="link-text">([^<]+)</code>', text(response))
    return match.group(1).replace(APP_URL, "")


def test_an_admins_link_binds_the_identity_once(sso, client):
    create_user(sso, "boss@example.org", "admin")
    lee = create_user(sso, "lee@work.example", "psychiatrist")  # not the provider's e-mail
    login(client, "boss@example.org")
    page = text(client.get(f"/staff/admin/users/{lee}"))
    assert "Not linked: this person cannot sign in with Clinic ID yet." in page
    link = make_link(sso, client, lee)
    assert ("provider_link_created", "lee@work.example") in audit(sso)

    person = sso.test_client()
    landing = person.get(link)
    assert "lee@work.example" in text(landing)
    assert "prompt=login" in to_provider(sso.test_client(), page=link)
    response = provider_sign_in(person, "ada", page=link)
    assert response.status_code == 302
    with sso.app_context():
        [identity] = storage.user_identities(get_db(), lee)
    assert identity["subject"] == "ada"
    assert identity["linked_how"] == "admin's link"
    assert ("provider_linked", "admin's link") in audit(sso)
    assert person.get("/staff/account").status_code == 200
    # Used: it opens nothing any more.
    assert sso.test_client().get(link).status_code == 404
    shown = text(client.get(f"/staff/admin/users/{lee}"))
    assert "Linked to Clinic ID" in shown
    assert "with an admin's link" in shown  # a fixed label (a lazy string: not escaped)


def test_a_link_cannot_bind_an_identity_that_another_account_has(sso, client):
    create_user(sso, "ada@example.org", "psychiatrist")
    settings(sso, provider_link_by_email=True)
    assert provider_sign_in(sso.test_client(), "ada").status_code == 302  # ada is linked
    create_user(sso, "boss@example.org", "admin")
    other = create_user(sso, "other@example.org", "frontdesk")
    login(client, "boss@example.org")
    link = make_link(sso, client, other)
    response = provider_sign_in(sso.test_client(), "ada", page=link)
    assert response.status_code == 403
    assert ("provider_login_failed", "identity already linked to another account") in audit(sso)


def test_an_expired_link_opens_nothing(sso, client, clock):
    create_user(sso, "boss@example.org", "admin")
    lee = create_user(sso, "lee@work.example", "psychiatrist")
    login(client, "boss@example.org")
    link = make_link(sso, client, lee)
    clock.advance(days=7, minutes=1)
    assert sso.test_client().get(link).status_code == 404


def test_unlinking_ends_the_sessions_and_the_identity_no_longer_opens_the_account(sso, client):
    create_user(sso, "boss@example.org", "admin")
    ada = create_user(sso, "ada@example.org", "psychiatrist")
    settings(sso, provider_link_by_email=True)
    person = sso.test_client()
    assert provider_sign_in(person, "ada").status_code == 302
    settings(sso, provider_link_by_email=False)
    login(client, "boss@example.org")
    response = staff_post(client, f"/staff/admin/users/{ada}/provider-unlink")
    assert response.status_code == 302
    assert ("provider_unlinked", "ada@example.org") in audit(sso)
    assert person.get("/staff/").status_code == 302  # signed out
    assert provider_sign_in(sso.test_client(), "ada").status_code == 403


# --- what is refused -----------------------------------------------------------------------


@pytest.fixture
def linked(sso):
    create_user(sso, "ada@example.org", "psychiatrist")
    settings(sso, provider_link_by_email=True)
    return sso


def test_a_tampered_state_is_refused(linked, client):
    callback = sign_in_at_provider(to_provider(client), "ada")
    response = back(client, with_query(callback, state="x" * 30))
    assert response.status_code == 401
    assert "did not work" in text(response)
    assert client.get("/staff/").status_code == 302
    assert ("provider_login_failed", "state does not match this browser's sign-in") in audit(linked)


def test_a_replayed_callback_is_refused(linked, client):
    callback = sign_in_at_provider(to_provider(client), "ada")
    assert back(client, callback).status_code == 302
    assert back(client, callback).status_code == 401  # the same browser, again
    stranger = linked.test_client()  # or someone who copied the address
    assert back(stranger, callback).status_code == 401
    assert stranger.get("/staff/").status_code == 302
    # The code's secret parts are never written down.
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert not any(code in detail for _, detail in audit(linked))


def test_a_response_naming_another_issuer_is_refused(linked, client):
    callback = sign_in_at_provider(to_provider(client), "ada")
    response = back(client, with_query(callback, iss="https://attacker.example"))
    assert response.status_code == 401
    assert ("provider_login_failed", "wrong issuer in the response") in audit(linked)
    callback = sign_in_at_provider(to_provider(client), "ada")
    assert back(client, with_query(callback, iss=None)).status_code == 401
    assert ("provider_login_failed", "no issuer in the response") in audit(linked)


def test_a_used_code_is_refused_by_the_provider_in_a_new_sign_in(linked, client):
    used = sign_in_at_provider(to_provider(client), "ada")
    assert back(client, used).status_code == 302
    # A new sign-in in the same browser, given the first one's code: its state is this
    # browser's, so the code reaches the provider, which refuses it.
    state = parse_qs(urlsplit(to_provider(client)).query)["state"][0]
    response = back(client, with_query(used, state=state))
    assert response.status_code == 401
    assert ("provider_login_failed", "token refused: invalid_grant") in audit(linked)


def test_an_admins_link_asks_the_provider_for_a_new_sign_in(sso, client, oidc):
    create_user(sso, "boss@example.org", "admin")
    lee = create_user(sso, "lee@work.example", "psychiatrist")
    settings(sso, provider_link_by_email=True)
    create_user(sso, "ada@example.org", "psychiatrist")
    login(client, "boss@example.org")
    link = make_link(sso, client, lee)
    # Someone else (ada) signed in at the provider on this computer earlier.
    desk = sso.test_client()
    browser = requests.Session()
    back(desk, sign_in_at_provider(to_provider(desk), "ada", person=browser))
    # Lee opens the link there: the provider asks who it is, never reusing ada's session.
    answer = browser.get(to_provider(desk, page=link), allow_redirects=True, timeout=10)
    assert 'name="login"' in answer.text  # the provider's login form
    back(desk, sign_in_at_provider(to_provider(desk, page=link), "lee-at-the-provider", browser))
    with sso.app_context():
        [identity] = storage.user_identities(get_db(), lee)
    assert identity["subject"] == "lee-at-the-provider"


def test_a_provider_announcing_another_issuer_is_not_trusted(app, oidc, client):
    # The same provider reached by another name: its discovery document names
    # 127.0.0.1, so it is not the issuer configured.
    app.config.update(
        oidc.app_config(),
        OIDC_ISSUER=oidc.issuer.replace("127.0.0.1", "localhost"),
        BASE_URL=APP_URL,
    )
    response = client.get("/staff/login/provider")
    assert response.status_code == 502
    assert ("provider_login_failed", "wrong issuer in the provider's discovery document") in audit(
        app
    )


def test_the_providers_refusal_is_shown_and_audited(linked, client, oidc):
    address = to_provider(client)
    state = parse_qs(urlsplit(address).query)["state"][0]
    response = client.get(
        "/staff/login/provider/callback?"
        + urlencode({"error": "access_denied", "state": state, "iss": oidc.issuer})
    )
    assert response.status_code == 401
    assert ("provider_login_failed", "provider answered access_denied") in audit(linked)


def test_a_new_signing_key_after_a_restart_is_fetched_once(linked, client, oidc):
    assert provider_sign_in(client, "ada").status_code == 302
    before = requests.get(f"{oidc.issuer}/jwks", timeout=5).json()["keys"][0]["kid"]
    oidc.restart()  # a new key, with a new key id
    after = requests.get(f"{oidc.issuer}/jwks", timeout=5).json()["keys"][0]["kid"]
    assert before != after
    # This app still holds the old keys: the unknown key id makes it fetch them again.
    with linked.app_context():
        [client_app] = linked.extensions["patientapp_provider"].values()
        assert client_app.server_metadata["jwks"]["keys"][0]["kid"] == before
    response = provider_sign_in(linked.test_client(), "ada")
    assert response.status_code == 302
    assert client_app.server_metadata["jwks"]["keys"][0]["kid"] == after


def test_a_provider_that_is_down_leaves_the_admins_password(linked, client, oidc):
    create_user(linked, "boss@example.org", "admin")
    settings(linked, local_sign_in="admins")
    oidc.stop()
    try:
        assert "Admins: sign in with a password" in text(client.get("/staff/login"))
        response = client.get("/staff/login/provider")
        assert response.status_code == 503
        assert "cannot be reached right now" in text(response)
        assert ("provider_login_failed", "provider unreachable") in audit(linked)
        # Admins only: a psychiatrist's password is not even checked, and the answer is
        # a wrong password's, so it never tells whether it was right.
        right = login(linked.test_client(), "ada@example.org")
        wrong = login(linked.test_client(), "ada@example.org", password="not it at all")
        assert right.status_code == wrong.status_code == 401
        assert text(right).count("match an active account") == 1
        assert ("login_failed", "password sign-in is for admins only") in audit(linked)
        assert login(client, "boss@example.org").status_code == 302
    finally:
        oidc.start()


def test_everyone_keeps_a_password_until_the_setting_says_admins_only(linked, client):
    assert login(client, "ada@example.org").status_code == 302


# --- the second factor ---------------------------------------------------------------------


@pytest.fixture
def mfa_linked(linked, clock):
    linked.config["MFA_REQUIRED_ROLES"] = DEFAULTS["MFA_REQUIRED_ROLES"]
    with linked.app_context():
        ada = storage.user_by_email(get_db(), "ada@example.org")["id"]
    create_user(linked, "cy@example.org", "admin")
    with linked.app_context():
        cy = storage.user_by_email(get_db(), "cy@example.org")["id"]
    return linked, {"ada": enrol(linked, ada)[0], "cy": enrol(linked, cy)[0]}


def test_our_second_factor_still_applies_after_the_provider(mfa_linked, client, clock):
    app, secrets = mfa_linked
    response = provider_sign_in(client, "ada")
    assert response.headers["Location"] == "/staff/login/code"
    assert client.get("/staff/").status_code == 302  # not yet
    clock.advance(minutes=1)
    response = send_code(client, mfa.current_code(secrets["ada"], clock()))
    assert response.headers["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200
    assert ("login", "sign-in service") in audit(app)
    # The ID token waited with the code step, and is sent back when signing out.
    [kept] = stored_id_tokens(app)
    assert claims_of(kept)["sub"] == "ada"
    address = staff_post(client, "/staff/logout").headers["Location"]
    assert parse_qs(urlsplit(address).query)["id_token_hint"] == [kept]


def test_the_providers_second_factor_counts_only_when_trusted_and_used(mfa_linked, client):
    app, _ = mfa_linked
    # cy signed in at the provider with a second factor (amr: mfa); not trusted yet.
    assert provider_sign_in(client, "cy").headers["Location"] == "/staff/login/code"
    settings(app, provider_trust_mfa=True)
    person = app.test_client()
    assert provider_sign_in(person, "cy").headers["Location"] == "/staff/"
    assert person.get("/staff/admin/users").status_code == 200
    assert ("login", "sign-in service, its second factor") in audit(app)
    # ada's sign-in at the provider used a password alone: our code is still asked for.
    assert provider_sign_in(app.test_client(), "ada").headers["Location"] == "/staff/login/code"


def test_a_trusted_second_factor_stands_in_for_enrolment(linked, client, clock):
    linked.config["MFA_REQUIRED_ROLES"] = DEFAULTS["MFA_REQUIRED_ROLES"]
    create_user(linked, "cy@example.org", "admin")  # no second factor set up here
    settings(linked, provider_trust_mfa=True)
    assert provider_sign_in(client, "cy").headers["Location"] == "/staff/"
    assert client.get("/staff/admin/users").status_code == 200  # not sent to set one up
    # With a password, the same account must still set up its own.
    password = linked.test_client()
    login(password, "cy@example.org")
    assert password.get("/staff/admin/users").headers["Location"] == "/staff/account/mfa"


def test_an_acr_the_clinic_names_counts_as_a_second_factor(mfa_linked, client):
    from patientapp.auth import provider
    from patientapp.auth.provider import Identity

    app, _ = mfa_linked
    app.config["OIDC_MFA_ACR_VALUES"] = "gold silver"
    with app.app_context():
        found = Identity("i", "s", "", False, (), "gold")
        assert provider.used_second_factor(found)
        assert not provider.used_second_factor(found.__class__("i", "s", "", False, (), "bronze"))
        assert not provider.used_second_factor(found.__class__("i", "s", "", False, ("pwd",), ""))


# --- signing out ---------------------------------------------------------------------------


def claims_of(id_token: str) -> dict:
    """The claims of a JWT, unchecked (the provider checks it; this only reads it)."""
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def stored_id_tokens(app) -> list:
    with app.app_context():
        rows = get_db().execute("SELECT id_token FROM staff_sessions ORDER BY created_at, rowid")
        return [row[0] for row in rows]


def sign_out_at_provider(person: requests.Session, address: str) -> str:
    """The browser at the provider's end-session address: confirm on its page, and return
    where it sends the browser back to."""
    response = person.get(address, allow_redirects=False, timeout=10)
    assert response.status_code == 200, response.text[:300]
    action = urljoin(response.url, unescape(FORM_ACTION.search(response.text).group(1)))
    fields = dict(HIDDEN.findall(response.text)) | {"logout": "yes"}
    response = person.post(action, data=fields, allow_redirects=False, timeout=10)
    assert response.status_code in (302, 303), response.text[:300]
    return urljoin(response.url, response.headers["Location"])


def test_signing_out_ends_the_providers_session_too(linked, client, oidc):
    person = requests.Session()  # the browser, as the provider knows it
    assert back(client, sign_in_at_provider(to_provider(client), "ada", person)).status_code == 302
    [kept] = stored_id_tokens(linked)
    response = staff_post(client, "/staff/logout")
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{oidc.issuer}/session/end"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["client_id"] == "patientapp-staff"
    assert query["post_logout_redirect_uri"] == APP_URL + "/staff/signed-out"
    # The ID token this session was signed in with goes back as the hint (this provider,
    # like Okta, refuses a sign-out without one), and is forgotten here.
    assert query["id_token_hint"] == kept
    claims = claims_of(kept)
    assert (claims["sub"], claims["aud"], claims["iss"]) == ("ada", "patientapp-staff", oidc.issuer)
    assert stored_id_tokens(linked) == [None]
    assert client.get("/staff/").status_code == 302
    assert ("logout", "") in audit(linked)
    # The provider takes it, asks, ends its session and sends the browser back here.
    returned = urlsplit(sign_out_at_provider(person, response.headers["Location"]))
    assert f"{returned.scheme}://{returned.netloc}{returned.path}" == APP_URL + "/staff/signed-out"
    assert "You are signed out" in text(client.get("/staff/signed-out"))
    assert "input" in person.get(to_provider(client), timeout=10).text  # asked who it is again


def test_the_provider_refuses_a_sign_out_without_the_id_token(linked, client, oidc):
    """What a session without its ID token (one signed in before it was kept) meets at a
    provider like Okta: the hint is what this provider, and the test above, hang on."""
    person = requests.Session()
    back(client, sign_in_at_provider(to_provider(client), "ada", person))
    address = staff_post(client, "/staff/logout").headers["Location"]
    parts = urlsplit(address)
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if k != "id_token_hint"}
    refused = person.get(urlunsplit(parts._replace(query=urlencode(query))), timeout=10)
    assert refused.status_code == 400
    assert "id_token_hint is required" in refused.text


def test_the_id_token_is_kept_only_while_its_session_lasts(linked, client, clock):
    create_user(linked, "bo@example.org", "frontdesk")
    assert provider_sign_in(client, "ada").status_code == 302
    password = linked.test_client()
    login(password, "bo@example.org")
    assert [bool(t) for t in stored_id_tokens(linked)] == [True, False]  # a password: none
    # Unlinking (or deactivating) ends the person's sessions, and their ID tokens go.
    with linked.app_context():
        ada = storage.user_by_email(get_db(), "ada@example.org")["id"]
        with storage.write(get_db()):
            storage.end_user_sessions(get_db(), ada, clock.moment)
    assert stored_id_tokens(linked) == [None, None]
    # A session never signed out keeps its ID token no longer than it could last: the next
    # sign-in after its absolute timeout forgets it.
    again = linked.test_client()
    assert provider_sign_in(again, "ada").status_code == 302
    clock.moment += timedelta(hours=DEFAULTS["STAFF_ABSOLUTE_HOURS"], minutes=1)
    assert provider_sign_in(linked.test_client(), "ada").status_code == 302
    assert [bool(t) for t in stored_id_tokens(linked)] == [False, False, False, True]
    # Nor past its idle limit: the hourly retention pass forgets it with nobody signing in.
    clock.moment += timedelta(minutes=linked.config["STAFF_IDLE_MINUTES"] - 1)
    retention.check(linked, lambda: clock.moment)
    assert [bool(t) for t in stored_id_tokens(linked)] == [False, False, False, True]
    clock.moment += timedelta(minutes=2)
    retention.check(linked, lambda: clock.moment)
    assert stored_id_tokens(linked) == [None] * 4


def test_a_sign_in_left_at_its_code_step_leaves_no_id_token_in_the_cookie(mfa_linked, client):
    assert provider_sign_in(client, "ada").headers["Location"] == "/staff/login/code"
    with client.session_transaction() as kept:
        assert claims_of(kept[PENDING_KEY]["id_token"])["sub"] == "ada"
    client.get("/staff/login")  # back at the start (another person, a shared computer)
    with client.session_transaction() as kept:
        assert PENDING_KEY not in kept
    assert client.get("/staff/login/code").headers["Location"] == "/staff/login"


def test_an_id_token_too_long_for_a_cookie_is_not_kept_through_the_code_step(
    mfa_linked, client, clock, monkeypatch
):
    """A provider's ID token can run to kilobytes (Entra ID with many groups): the cookie
    must stay within a browser's 4 KB, so sign-out then sends client_id alone."""
    from patientapp.auth import views

    app, secrets = mfa_linked
    monkeypatch.setattr(views, "HINT_IN_COOKIE", 100)
    assert provider_sign_in(client, "ada").headers["Location"] == "/staff/login/code"
    with client.session_transaction() as kept:
        assert kept[PENDING_KEY]["id_token"] is None
    clock.advance(minutes=1)
    assert send_code(client, mfa.current_code(secrets["ada"], clock())).status_code == 302
    assert stored_id_tokens(app) == [None]
    address = staff_post(client, "/staff/logout").headers["Location"]
    assert "id_token_hint" not in parse_qs(urlsplit(address).query)


def test_a_password_session_signs_out_here_only(linked, client):
    login(client, "ada@example.org")
    assert staff_post(client, "/staff/logout").headers["Location"] == "/staff/login"


def test_a_secret_file_that_cannot_be_read_leaves_the_password_way_in(app, oidc, client):
    app.config.update(
        oidc.app_config(), OIDC_CLIENT_SECRET_FILE="/nonexistent/secret", BASE_URL=APP_URL
    )
    create_user(app, "boss@example.org", "admin")
    assert "Sign in with Clinic ID" in text(client.get("/staff/login"))
    assert login(client, "boss@example.org").status_code == 302
    create_user(app, "ada@example.org", "psychiatrist")
    settings(app, provider_link_by_email=True)
    assert provider_sign_in(app.test_client(), "ada").status_code == 401  # no secret
    assert ("provider_login_failed", "token refused: invalid_client") in audit(app)


def test_an_unreadable_answer_from_the_provider_is_a_refusal_not_an_error(linked, monkeypatch):
    from authlib.integrations.flask_client import FlaskOAuth2App

    def broken(self, **kwargs):
        raise ValueError("Invalid token response: not a JSON object")

    client = linked.test_client()
    callback = sign_in_at_provider(to_provider(client), "ada")
    monkeypatch.setattr(FlaskOAuth2App, "authorize_access_token", broken)
    response = back(client, callback)
    assert response.status_code == 401
    assert ("provider_login_failed", "provider's answer unreadable: ValueError") in audit(linked)


@pytest.fixture(scope="module")
def slashed(tmp_path_factory):
    available()
    provider = OpenIDProvider(tmp_path_factory.mktemp("slash"), APP_URL, trailing_slash=True)
    yield provider.start()
    provider.stop()


def test_an_issuer_ending_in_a_slash_is_taken_exactly(app, slashed, client):
    assert slashed.issuer.endswith("/")
    app.config.update(slashed.app_config(), BASE_URL=APP_URL)
    create_user(app, "ada@example.org", "psychiatrist")
    settings(app, provider_link_by_email=True)
    assert provider_sign_in(client, "ada").headers["Location"] == "/staff/"


def test_the_client_secret_can_come_from_a_file(app, oidc, tmp_path, client):
    secret = tmp_path / "client-secret"
    secret.write_text(oidc.app_config()["OIDC_CLIENT_SECRET"] + "\n")
    app.config.update(
        oidc.app_config(),
        OIDC_CLIENT_SECRET="wrong",
        OIDC_CLIENT_SECRET_FILE=str(secret),
        BASE_URL=APP_URL,
    )
    create_user(app, "ada@example.org", "psychiatrist")
    settings(app, provider_link_by_email=True)
    assert provider_sign_in(client, "ada").status_code == 302


def test_signing_out_never_waits_on_a_provider_no_longer_configured(linked, client):
    assert provider_sign_in(client, "ada").status_code == 302
    linked.config["OIDC_ISSUER"] = ""  # the clinic turned the provider off meanwhile
    assert staff_post(client, "/staff/logout").headers["Location"] == "/staff/login"
    assert client.get("/staff/").status_code == 302


@pytest.mark.parametrize(
    ("error", "reason", "status"),
    [
        (BadSignatureError(), "ID token refused: bad_signature", 401),
        (requests.ConnectionError("refused"), "provider unreachable", 503),
        (RuntimeError('Missing "jwks_uri"'), "provider's answer unreadable: RuntimeError", 401),
    ],
    ids=["bad signature", "down at the token endpoint", "no jwks_uri"],
)
def test_every_way_the_token_step_fails_is_a_refusal(linked, monkeypatch, error, reason, status):
    from authlib.integrations.flask_client import FlaskOAuth2App

    def failing(self, **kwargs):
        raise error

    client = linked.test_client()
    callback = sign_in_at_provider(to_provider(client), "ada")
    monkeypatch.setattr(FlaskOAuth2App, "authorize_access_token", failing)
    response = back(client, callback)
    assert response.status_code == status
    assert ("provider_login_failed", reason) in audit(linked)


def test_a_token_without_an_id_token_proves_nobody(linked, monkeypatch):
    from authlib.integrations.flask_client import FlaskOAuth2App

    monkeypatch.setattr(
        FlaskOAuth2App, "authorize_access_token", lambda self, **kw: {"access_token": "x"}
    )
    client = linked.test_client()
    response = back(client, sign_in_at_provider(to_provider(client), "ada"))
    assert response.status_code == 401
    assert ("provider_login_failed", "no ID token") in audit(linked)


@pytest.mark.parametrize(
    "answer",
    [
        requests.ConnectionError("down"),
        ValueError("not JSON"),
        {"sub": "someone-else", "email": "x@y"},
    ],
    ids=["down", "not JSON", "another subject"],
)
def test_user_info_that_cannot_be_trusted_gives_no_e_mail(linked, monkeypatch, answer):
    from authlib.integrations.flask_client import FlaskOAuth2App

    def userinfo(self, **kwargs):
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(FlaskOAuth2App, "userinfo", userinfo)
    response = provider_sign_in(linked.test_client(), "ada")
    assert response.status_code == 403  # not linked: no e-mail to link by
    assert ("provider_login_failed", "unknown subject") in audit(linked)


def test_a_provider_without_an_end_session_endpoint_signs_out_here(linked, client):
    assert provider_sign_in(client, "ada").status_code == 302
    [app_client] = linked.extensions["patientapp_provider"].values()
    app_client.server_metadata.pop("end_session_endpoint")
    assert staff_post(client, "/staff/logout").headers["Location"] == "/staff/login"
    # Nor is its ID token kept, with nowhere to send it back to.
    assert provider_sign_in(linked.test_client(), "ada").status_code == 302
    assert stored_id_tokens(linked) == [None, None]


def test_failures_from_one_address_cannot_fill_the_audit_log(linked):
    linked.config["UNSIGNED_AUDIT_PER_CLIENT"] = 2
    stranger = linked.test_client()
    answers = [stranger.get("/staff/login/provider/callback?code=x&state=y") for _ in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 429, 429]
    assert all("did not work" in text(a) for a in answers)
    failed = [e for e in audit(linked) if e[0] == "provider_login_failed"]
    assert len(failed) == 2
    # Another address is not held by it.
    other = linked.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert other.get("/staff/login/provider/callback?code=x&state=y").status_code == 401


def test_the_language_chosen_before_stays_after_the_provider(linked, client):
    client.get("/staff/login?lang=vi")
    assert provider_sign_in(client, "ada").headers["Location"] == "/staff/"
    assert '<html lang="vi"' in text(client.get("/staff/"))

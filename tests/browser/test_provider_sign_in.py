"""Staff sign-in with the clinic's OpenID Provider in Chromium: the real server (waitress)
and a real provider (oidc-provider on loopback, tests/oidc_provider), its own login and
sign-out pages clicked through as staff would; and the one page opened from the EHR
(SMART EHR launch) by someone signed in that way.

Stand-ins (said in tests/oidc_provider/server.mjs): the provider's login page takes any
password for a listed account, and grants consent at once for this app; the EHR is a
second oidc-provider, on an origin of its own, with a small launch-context layer (its
smart-configuration, the launch context in its token response, two FHIR reads).
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pyotp
import pytest

from patientapp.db import storage
from patientapp.domain import mfa
from tests.browser.conftest import LiveServer
from tests.browser.maximal_visit import store_maximal_visit
from tests.helpers.oidc_provider import MRN, OpenIDProvider, available, one_patient_ehr

from .staff_ui import (
    TOTP_SECRETS,
    StaffUser,
    create_users,
    fresh_code,
    open_desktop,
    query,
    user_id,
)

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixtures skip (or fail in CI) first
    expect = None

ADA = StaffUser("frontdesk", "ada@example.org", "Ada at the desk")
CY = StaffUser("admin", "cy@example.org", "Cy Admin")
DR = StaffUser("psychiatrist", "dr@example.org", "Dr. Lee")  # a password and an app code
FAILED = "Signing in with the clinic's sign-in service did not work."
EHR = one_patient_ehr("chart-open", "MX-2001")


@pytest.fixture(scope="module")
def sso(browser_available, tmp_path_factory):
    """The app, configured by environment as a clinic's IT would, and its provider."""
    available()
    folder = tmp_path_factory.mktemp("sso")
    server = LiveServer(folder / "instance")
    # Signing out there needs the ID token back, as at Okta.
    provider = OpenIDProvider(folder, server.url, logout_needs_id_token_hint=True).start()
    # The EHR on an origin of its own (as it would be): its own authorization server.
    (folder / "ehr").mkdir()
    ehr = OpenIDProvider(folder / "ehr", server.url, smart=EHR).start()
    server.env.update(provider.app_env())
    server.env.update({f"PATIENTAPP_{k}": v for k, v in ehr.smart_config().items()})
    try:
        server.start()
        create_users(server, [ADA, CY, DR])
        db = sqlite3.connect(server.database, timeout=10)
        with db:
            for key, value in {
                "provider_link_by_email": True,
                "provider_trust_mfa": True,
                "references_are_chart_numbers": True,
                "chart_number_system": MRN,
            }.items():
                db.execute(
                    "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key)"
                    " DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)),
                )
        db.close()
        yield server, provider, ehr
    finally:
        server.stop()
        provider.stop()
        ehr.stop()


@pytest.fixture
def page(chromium, sso):
    page = open_desktop(chromium)
    yield page
    page.context.close()


def at_provider(page, server, login: str):
    """From our sign-in page to the provider's, and sign in there as `login`."""
    page.goto(f"{server.url}/staff/login")
    page.get_by_role("link", name="Sign in with Clinic ID").click()
    expect(page.locator("input[name=login]")).to_be_visible()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()


def changed(url: str, **changes) -> str:
    parts = urlsplit(url)
    query_ = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query_)))


def last_audit(server, action: str) -> str:
    rows = query(server, "SELECT detail FROM audit_log WHERE action = ? ORDER BY id", (action,))
    return rows[-1]["detail"]


def test_sign_in_and_sign_out_at_the_provider(page, sso):
    server, provider, _ = sso
    at_provider(page, server, "ada")
    expect(page).to_have_url(f"{server.url}/staff/")
    expect(page.locator("body")).to_contain_text("Ada at the desk")
    assert last_audit(server, "login") == "sign-in service"

    # Signing out here ends the provider's session too: its own page asks, then sends
    # the browser back to ours.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Yes, sign me out")).to_be_visible()
    assert page.url.startswith(f"{provider.issuer}/session/end")
    assert "id_token_hint=" in page.url  # without it, this provider refuses (as Okta does)
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(re.compile(rf"^{server.url}/staff/signed-out(\?state=[\w-]+)?$"))
    expect(page.locator("#sign-in-problem")).to_have_text(
        "You are signed out, here and at the sign-in service."
    )
    # The provider asks who it is again: its session ended.
    page.get_by_role("link", name="Sign in with Clinic ID").click()
    expect(page.locator("input[name=login]")).to_be_visible()


def test_the_providers_second_factor_opens_an_admins_pages(page, sso):
    server, _, _ = sso
    at_provider(page, server, "cy")  # amr: mfa, and Settings trust it
    expect(page).to_have_url(f"{server.url}/staff/")
    page.goto(f"{server.url}/staff/admin/users")
    expect(page.locator("h1")).to_have_text("Users")


def test_an_unknown_subject_is_sent_to_an_admin(page, sso):
    server, _, _ = sso
    at_provider(page, server, "stranger")
    expect(page.locator("#sign-in-problem")).to_contain_text("not linked to an account here")
    assert last_audit(server, "provider_login_failed") == "unknown subject"
    page.goto(f"{server.url}/staff/")
    expect(page).to_have_url(re.compile(r"/staff/login"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"state": "tampered-state-value-000000"}, "state does not match this browser's sign-in"),
        ({"iss": "https://attacker.example"}, "wrong issuer in the response"),
    ],
    ids=["tampered state", "wrong issuer"],
)
def test_a_tampered_callback_is_refused(page, sso, change, reason):
    server, provider, _ = sso

    def tamper(route):
        # Playwright cannot route the redirects that follow, so the provider's answer to
        # its login form is followed here, with the browser's own cookies, up to the
        # redirect back to the app; the browser gets that redirect with `change` made.
        if route.request.method != "POST":
            route.continue_()
            return
        answer = route.fetch(max_redirects=0)
        location = answer.headers["location"]
        while not location.startswith(server.url):
            step = page.context.request.get(location, max_redirects=0)
            location = step.headers["location"]
        route.fulfill(status=303, headers={"Location": changed(location, **change)})

    page.route(re.compile(rf"^{provider.issuer}/interaction/[^/?]+$"), tamper)
    at_provider(page, server, "ada")
    expect(page.locator("#sign-in-problem")).to_contain_text(FAILED)
    assert last_audit(server, "provider_login_failed") == reason
    page.goto(f"{server.url}/staff/")
    expect(page).to_have_url(re.compile(r"/staff/login"))


def test_a_replayed_callback_is_refused(page, chromium, sso):
    server, _, _ = sso
    seen = []
    page.on(
        "request",
        lambda request: seen.append(request.url) if "/provider/callback?" in request.url else None,
    )
    at_provider(page, server, "ada")
    expect(page).to_have_url(f"{server.url}/staff/")
    [callback] = seen
    page.goto(callback)  # the same browser, again
    expect(page.locator("#sign-in-problem")).to_contain_text(FAILED)
    other = open_desktop(chromium)  # someone who copied the address
    try:
        other.goto(callback)
        expect(other.locator("#sign-in-problem")).to_contain_text(FAILED)
        other.goto(f"{server.url}/staff/")
        expect(other).to_have_url(re.compile(r"/staff/login"))
    finally:
        other.context.close()


def test_a_restarted_provider_with_a_new_key_still_signs_in(page, sso):
    server, provider, _ = sso
    at_provider(page, server, "ada")
    expect(page).to_have_url(f"{server.url}/staff/")
    page.context.clear_cookies()
    provider.restart()  # a new signing key: the server fetches the keys again, once
    at_provider(page, server, "ada")
    expect(page).to_have_url(f"{server.url}/staff/")


@pytest.fixture(scope="module")
def one_page(sso):
    """Today's sent visit of the patient the EHR launches for, and Dr. Lee's app code."""
    server, _, _ = sso
    database = storage.connect(server.database)
    try:
        stored = store_maximal_visit(database, "MX-2001")
        secret = pyotp.random_base32()
        earlier = datetime.now() - timedelta(minutes=5)  # a step long past: now's is free
        doctor = user_id(server, DR.email)
        with storage.write(database):
            storage.set_totp_pending(database, doctor, secret)
            storage.enrol_totp(
                database,
                doctor,
                step=mfa.matching_step(secret, mfa.current_code(secret, earlier), earlier),
                code_hashes=[],
                now=earlier,
            )
    finally:
        database.conn.close()
    TOTP_SECRETS[DR.email] = secret
    return stored


def test_the_ehr_opens_the_one_page_for_someone_signed_in_with_the_provider(page, sso, one_page):
    server, _, ehr = sso
    stored = one_page
    at_provider(page, server, "cy")  # the admin, signed in with the clinic's sign-in
    expect(page).to_have_url(f"{server.url}/staff/")
    # The EHR opens the app in a new window; the app sends it on to the EHR's own
    # authorization server, where the EHR's login stands for the person being there.
    window = page.context.new_page()
    window.goto(f"{server.url}/smart/launch?iss={ehr.fhir_base}&launch=chart-open")
    window.locator("input[name=login]").fill("cy-at-the-ehr")
    window.locator("input[name=password]").fill("any password")
    window.get_by_role("button", name="Sign-in").click()
    expect(window).to_have_url(f"{server.url}/staff/visits/{stored.visit_id}/summary")
    expect(window.locator("body")).to_contain_text("MX-2001")
    rows = query(
        server,
        "SELECT visit_id, detail FROM audit_log WHERE action = 'smart_launch' ORDER BY id",
    )
    assert rows[-1] == {
        "visit_id": stored.visit_id,
        "detail": f"1 found (EHR {ehr.fhir_base}, patient p1, encounter -)",
    }
    window.close()


def test_a_launch_before_signing_in_goes_on_after_a_password_and_a_code(chromium, sso, one_page):
    server, _, ehr = sso
    window = open_desktop(chromium)  # a browser signed in nowhere yet
    try:
        window.goto(f"{server.url}/smart/launch?iss={ehr.fhir_base}&launch=chart-open")
        expect(window.locator("h1")).to_have_text("Staff sign in")
        window.get_by_label("Email").fill(DR.email)
        window.get_by_label("Password").fill(DR.password)
        window.get_by_role("button", name="Sign in", exact=True).click()
        window.get_by_label("Code").fill(fresh_code(DR.email))
        window.get_by_role("button", name="Sign in", exact=True).click()
        # Then on to the EHR, which asks who it is (no session there in this browser):
        # the page moves on by itself, past the pages' form-action.
        expect(window.locator("input[name=login]")).to_be_visible()
        window.locator("input[name=login]").fill("dr-lee-at-the-ehr")
        window.locator("input[name=password]").fill("any password")
        window.get_by_role("button", name="Sign-in").click()
        expect(window).to_have_url(f"{server.url}/staff/visits/{one_page.visit_id}/summary")
        expect(window.locator("body")).to_contain_text("MX-2001")
    finally:
        window.context.close()

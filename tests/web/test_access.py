"""Who may use which staff route, checked on every route in app.url_map.

Each request carries a valid CSRF token and a form that would succeed, so only the login
and role checks stand between it and a change: a logged-out visitor is sent to sign in
(or gets 401), a wrong role gets 403 or 404, neither changes the database, and the right
role is served. A new route fails here until it is placed in ACCESS.
"""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from patientapp.auth.sessions import REFUSED_SCOPE
from patientapp.db import storage
from patientapp.domain import api_tokens, mfa, visits
from patientapp.web.context import get_db
from tests.conftest import create_user, csrf_from, login, make_invitation

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new secret"
EVERYONE = ("frontdesk", "psychiatrist", "admin")
READERS = ("psychiatrist", "admin")
ADMINS = ("admin",)

# How a person gets in: the login form, the one-time first-admin link, and the clinic's
# sign-in service (its button, its callback, the page after signing out there, an admin's
# one-time link; tests/web/auth/test_provider_sign_in.py).
PUBLIC = {
    "auth.login",
    "auth.login_code",
    "auth.setup",
    "auth.provider_start",
    "auth.provider_callback",
    "auth.signed_out",
    "auth.provider_link",
    "auth.provider_link_start",
    "smart.launch",  # where the EHR opens the app: on to sign-in first
}
# For monitors, without a sign-in and read-only to them: nothing about patients
# (tests/web/test_health.py).
MONITORS = {"health.healthz"}
STAFF_BLUEPRINTS = {"staff", "admin", "auth"}

# endpoint -> (roles that may use it, what any other role gets)
ACCESS = {
    "staff.board": (EVERYONE, None),
    "staff.board_json": (EVERYONE, None),
    "staff.alerts_json": (EVERYONE, None),
    "staff.acknowledge": (EVERYONE, None),
    "staff.new_invitation": (EVERYONE, None),
    "staff.invitation": (EVERYONE, None),
    "staff.slip": (EVERYONE, None),
    "staff.cancel": (EVERYONE, None),
    "staff.reissue": (EVERYONE, None),
    "staff.send_link": (EVERYONE, None),
    "staff.tablet_mode": (EVERYONE, None),
    "staff.summary_page": (READERS, 404),
    "staff.print_page": (READERS, 404),
    "staff.summary_text": (READERS, 404),
    "staff.safety_report_page": (READERS, 403),
    "staff.safety_report_csv": (READERS, 403),
    "staff.summary_fhir": (READERS, 404),
    "staff.summary_copied": (READERS, 404),
    "staff.reviewed": (READERS, 404),
    "auth.account": (EVERYONE, None),
    "auth.logout": (EVERYONE, None),
    "auth.mfa_setup": (EVERYONE, None),
    "admin.users": (ADMINS, 403),
    "admin.user": (ADMINS, 403),
    "admin.change_role": (ADMINS, 403),
    "admin.set_password": (ADMINS, 403),
    "admin.deactivate": (ADMINS, 403),
    "admin.reactivate": (ADMINS, 403),
    "admin.reset_mfa": (ADMINS, 403),
    "admin.settings": (ADMINS, 403),
    "admin.mail_settings": (ADMINS, 403),
    "admin.mail_test": (ADMINS, 403),
    "admin.message_settings": (ADMINS, 403),
    "admin.audit_log": (ADMINS, 403),
    "admin.integrations": (ADMINS, 403),
    "admin.revoke_token": (ADMINS, 403),
    "admin.rotate_token": (ADMINS, 403),
    "admin.export_csv": (ADMINS, 403),
    "admin.provider_link": (ADMINS, 403),
    "admin.provider_unlink": (ADMINS, 403),
    # Opened from the EHR (tests/web/staff/test_smart_launch.py): the access rules here.
    "smart.authorize": (READERS, 404),
    "smart.callback": (READERS, 404),
}

# Which visit or account a route acts on; anything unlisted uses the sent visit and
# the target account.
OPEN_VISIT_ROUTES = {
    "staff.invitation",
    "staff.slip",
    "staff.cancel",
    "staff.reissue",
    "staff.send_link",
}
INACTIVE_USER_ROUTES = {"admin.reactivate"}


def enrolment_code(app) -> dict:
    """The code that confirms the second factor being set up (the GET made the secret)."""
    with app.app_context():
        pending = [u["totp_pending"] for u in storage.list_users(get_db()) if u["totp_pending"]]
    return {"code": mfa.current_code(pending[-1], app.config["CLOCK"]()) if pending else "1"}


# A form that succeeds when the right person sends it (a function: made just before).
FORMS = {
    # The clinic fixture has a relay to send it by.
    "staff.send_link": {"email": "patient@mail.example"},
    "auth.mfa_setup": enrolment_code,
    "staff.new_invitation": {
        "patient_ref": "NEW-1",
        "day": "2026-11-25",
        "time": "15:00",
        "psychiatrist": "0",
        "language": "",
    },
    "auth.account": {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    "admin.users": {
        "email": "new@example.org",
        "display_name": "New Person",
        "role": "admin",
        "password": PASSWORD,
    },
    "admin.change_role": {"role": "admin"},
    "admin.integrations": {"name": "EHR interface"},
    "admin.set_password": {"password": NEW_PASSWORD},
    "admin.settings": {
        "clinic_name": "Riverside",
        "crisis_text": "Call 555-0100.",
        "languages": ["en"],
        "invite_extra_days": "2",
        "patient_idle_minutes": "20",
        "retention_days": "400",
        "escalate_after_minutes": "5",
    },
    "admin.mail_settings": {
        "smtp_host": "smtp.clinic.example",
        "smtp_port": "587",
        "smtp_security": "starttls",
        "mail_from": "alerts@clinic.example",
        "oncall_address": "oncall@clinic.example",
    },
    "admin.message_settings": {
        "reminder_hours_before": "24",
        "quiet_from": "21:00",
        "quiet_until": "08:00",
        "sms_mode": "none",
        "sms_http_content_type": "form",
    },
}

# (status, where it redirects) for the right role; every GET not listed is served with 200.
SERVED = {
    ("staff.acknowledge", "POST"): (302, "/staff/?day=2026-11-25"),
    ("staff.new_invitation", "POST"): (302, "/staff/visits/{new_visit}/invitation"),
    ("staff.cancel", "POST"): (302, "/staff/visits/{open}/invitation"),
    ("staff.reissue", "POST"): (302, "/staff/visits/{open}/invitation"),
    ("staff.send_link", "POST"): (302, "/staff/visits/{open}/invitation"),
    ("staff.tablet_mode", "POST"): (302, "/start"),
    ("staff.summary_copied", "POST"): (204, None),
    ("staff.reviewed", "POST"): (302, "/staff/?day=2026-11-25"),
    ("auth.account", "POST"): (302, "/staff/account"),
    ("auth.logout", "POST"): (302, "/staff/login"),
    ("auth.mfa_setup", "POST"): (200, None),
    ("admin.users", "POST"): (302, "/staff/admin/users"),
    ("admin.change_role", "POST"): (302, "/staff/admin/users/{target}"),
    ("admin.set_password", "POST"): (302, "/staff/admin/users/{target}"),
    ("admin.deactivate", "POST"): (302, "/staff/admin/users/{target}"),
    ("admin.reactivate", "POST"): (302, "/staff/admin/users/{inactive}"),
    ("admin.reset_mfa", "POST"): (302, "/staff/admin/users/{target}"),
    # The page with the link, shown once.
    ("admin.provider_link", "POST"): (200, None),
    ("admin.provider_unlink", "POST"): (302, "/staff/admin/users/{target}"),
    # Reached without the EHR's launch (its iss and launch id) or its answer: refused,
    # and audited (tests/web/staff/test_smart_launch.py walks the real ones).
    ("smart.authorize", "GET"): (403, None),
    ("smart.callback", "GET"): (400, None),
    ("admin.settings", "POST"): (302, "/staff/admin/settings"),
    ("admin.mail_settings", "POST"): (302, "/staff/admin/mail"),
    # Nothing is set up in this clinic: the test is refused, and audited.
    ("admin.mail_test", "POST"): (302, "/staff/admin/mail"),
    ("admin.message_settings", "POST"): (302, "/staff/admin/messages"),
    # The new token is shown on the page itself, once, never through a redirect.
    ("admin.integrations", "POST"): (200, None),
    ("admin.revoke_token", "POST"): (302, "/staff/admin/integrations"),
    # The new secret is shown on the page itself, once, like a new token.
    ("admin.rotate_token", "POST"): (200, None),
}

# Touched by every signed-in request (last seen), before any role check.
SESSION_TABLES = ("staff_sessions",)


# --- helpers -----------------------------------------------------------------------------


ACCESS_ISSUER = "https://login.clinic.example"


@pytest.fixture
def app(app):
    app.config.update(
        OIDC_ISSUER=ACCESS_ISSUER,
        OIDC_CLIENT_ID="patientapp",
        SMART_ISSUERS="https://ehr.clinic.example/fhir",
        SMART_CLIENT_ID="patientapp",
    )
    return app


@pytest.fixture
def clinic(app):
    """A signed-up clinic: one account per role, a target and a deactivated account, a sent
    visit with an open safety alert and an open invitation."""
    for role in EVERYONE:
        create_user(app, f"{role}@example.org", role)
    target = create_user(app, "target@example.org", "frontdesk")
    inactive = create_user(app, "inactive@example.org", "frontdesk")
    sent = make_invitation(app, patient_ref="SENT-1").visit_id
    open_visit = make_invitation(app, patient_ref="OPEN-1").visit_id
    with app.app_context():
        db, now = get_db(), app.config["CLOCK"]()
        storage.update_user(db, inactive, active=0)
        # Written through the visit rules rather than the patient pages: this runs for
        # every test.
        visits.start(db, sent, language="en", version="2026.1", now=now)
        answers = {"T2": "Sleep, mostly.", "S1": "nearly_every_day"}
        visits.save_step(db, sent, answers, step=10, next_step=11, now=now)
        assert visits.submit(db, sent, set(), now)
        token, _secret = api_tokens.create_token(db, "Register", None, now)
        # A clinic sign-in service (never asked here), with the target linked to it, and
        # an EHR that may launch the one page.
        storage.link_identity(db, target, ACCESS_ISSUER, "target", "admin's link", now)
        # A relay, so the front desk can send an invitation's link by e-mail.
        storage.save_settings(
            db, {"smtp_host": "smtp.clinic.example", "mail_from": "c@clinic.example"}
        )
    return SimpleNamespace(
        sent=sent,
        open=open_visit,
        new_visit=open_visit + 1,
        target=target,
        inactive=inactive,
        token=token,
    )


def staff_rules(app):
    """Every rule that needs a signed-in staff member: the staff, admin and auth
    blueprints and anything else under /staff/, less the public way in."""
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in PUBLIC
        and (rule.endpoint.split(".")[0] in STAFF_BLUEPRINTS or rule.rule.startswith("/staff"))
    ]


def url_of(app, rule, clinic, visit_id=None) -> str:
    values = {}
    if "visit_id" in rule.arguments:
        default = clinic.open if rule.endpoint in OPEN_VISIT_ROUTES else clinic.sent
        values["visit_id"] = visit_id or default
    if "token_id" in rule.arguments:
        values["token_id"] = clinic.token
    if "user_id" in rule.arguments:
        values["user_id"] = (
            clinic.inactive if rule.endpoint in INACTIVE_USER_ROUTES else clinic.target
        )
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def staff_requests(app, clinic):
    """(rule, method, url, form) for every method of every staff rule."""
    for rule in sorted(staff_rules(app), key=lambda r: r.rule):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            form = FORMS.get(rule.endpoint, {}) if method == "POST" else {}
            yield rule, method, url_of(app, rule, clinic), form


def snapshot(db, skip=()) -> dict:
    """Every row of every table, to tell whether a request changed anything."""
    return {
        table: [tuple(row.values()) for row in db[table].rows]
        for table in db.table_names()
        if table not in skip
    }


def but_refusals(db) -> dict:
    """Every row but the audit entries of refusals and the rows counting them."""
    rows = snapshot(db, skip=SESSION_TABLES)
    rows["audit_log"] = [r for r in db["audit_log"].rows if r["action"] != "access_refused"]
    rows["failures"] = [r for r in db["failures"].rows if r["scope"] != REFUSED_SCOPE]
    return rows


def send(client, method, url, form, token_page):
    token = csrf_from(client.get(token_page).get_data(as_text=True))
    if callable(form):
        form = form(client.application)
    return client.open(url, method=method, data={"csrf_token": token, **form})


def signed_in(app, role):
    client = app.test_client()
    assert login(client, f"{role}@example.org").status_code == 302
    return client


def login_redirect_problem(response, url) -> str | None:
    """Why a logged-out GET of a page did not land on the login form, coming back after."""
    if response.status_code != 302:
        return f"status {response.status_code}, not a redirect to the login page"
    location = urlsplit(response.headers["Location"])
    if location.path != "/staff/login" or parse_qs(location.query).get("next") != [url]:
        return f"redirected to {response.headers['Location']}, not the login page"
    return None


def logged_out_problem(method, url, response) -> str | None:
    if method == "GET" and not url.endswith(".json"):
        return login_redirect_problem(response, url)
    if response.status_code != 401:
        return f"status {response.status_code}, expected 401"
    return None


# --- the route table -----------------------------------------------------------------------


def test_every_staff_route_has_a_declared_audience(app):
    endpoints = {rule.endpoint for rule in staff_rules(app)}
    assert endpoints == set(ACCESS), "add new staff routes to ACCESS (and FORMS, SERVED)"
    posts = {(r.endpoint, "POST") for r in staff_rules(app) if "POST" in r.methods}
    assert posts == {served for served in SERVED if served[1] == "POST"}


def test_every_other_route_is_a_patient_page_or_static(app):
    staff = {rule.endpoint for rule in staff_rules(app)}
    others = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in staff | PUBLIC | MONITORS
    }
    allowed = ("patient.", "api.")
    assert others and all(e == "static" or e.startswith(allowed) for e in others), others


def test_monitor_routes_are_declared_and_take_no_form(app):
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("health.")]
    assert {r.endpoint for r in rules} == MONITORS, "declare new monitor routes in MONITORS"
    assert all(r.methods <= {"GET", "HEAD", "OPTIONS"} for r in rules)
    assert not any(r.rule.startswith(("/staff", "/api")) for r in rules)


# --- the FHIR API: a bearer token, never a cookie ---------------------------------------------

# endpoint -> a URL that a valid token is served (200)
API_ROUTES = {
    "api.questionnaire_read": "/api/fhir/Questionnaire/reflection",
    "api.response_search": "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-01-01T00:00:00Z",
    "api.response_read": "/api/fhir/QuestionnaireResponse/{sent_uuid}",  # the sent visit
    "api.metadata": "/api/fhir/metadata",
    "api.codesystem_read": "/api/fhir/CodeSystem/reflection-M2",
    "api.codesystem_search": "/api/fhir/CodeSystem?url=urn:patientapp:fhir:CodeSystem:M2",
    "api.questionnaire_search": "/api/fhir/Questionnaire?version=2026.1&url="
    + "urn:patientapp:fhir:Questionnaire:reflection",
    "api.structure_read": "/api/fhir/StructureDefinition/held-for-in-person",
    "api.structure_search": "/api/fhir/StructureDefinition?url="
    + "urn:patientapp:fhir:StructureDefinition:progress",
    "api.observation_search": "/api/fhir/Observation",
    "api.observation_read": "/api/fhir/Observation/{sent_uuid}-safety-1",
    "api.flag_search": "/api/fhir/Flag",
    "api.flag_read": "/api/fhir/Flag/{sent_uuid}-safety-alert",
    "api.document_search": "/api/fhir/DocumentReference",
    "api.document_read": "/api/fhir/DocumentReference/{sent_uuid}-summary",
}


def test_every_api_route_is_declared(app):
    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")}
    assert endpoints == set(API_ROUTES), "add new API routes to API_ROUTES"
    methods = {
        m for r in app.url_map.iter_rules() if r.endpoint.startswith("api.") for m in r.methods
    }
    assert methods <= {"GET", "HEAD", "OPTIONS"}, "the API is read-only"


def test_the_api_takes_a_live_token_and_nothing_else(app, clinic, db):
    with app.app_context():
        from patientapp.web.context import get_db as app_db

        _id, secret = api_tokens.create_token(app_db(), "EHR", None, app.config["CLOCK"]())
        revoked, old = api_tokens.create_token(app_db(), "Old", None, app.config["CLOCK"]())
        storage.revoke_api_token(app_db(), revoked, app.config["CLOCK"]())
    staff = signed_in(app, "admin")  # a signed-in browser's cookies count for nothing
    sent_uuid = storage.get_visit(db, clinic.sent).uuid
    for endpoint, url in API_ROUTES.items():
        url = url.format(sent_uuid=sent_uuid)
        for client, headers in (
            (app.test_client(), {}),
            (staff, {}),
            (app.test_client(), {"Authorization": "Bearer nonsense"}),
            (app.test_client(), {"Authorization": f"Bearer {old}"}),
            (app.test_client(), {"Authorization": f"Basic {secret}"}),
        ):
            response = client.get(url, headers=headers)
            assert response.status_code == 401, (endpoint, headers)
            assert response.headers["WWW-Authenticate"] == "Bearer"
        ok = app.test_client().get(url, headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200, endpoint
        assert ok.mimetype == "application/fhir+json"
    refused = app.test_client().post(
        API_ROUTES["api.response_search"], headers={"Authorization": f"Bearer {secret}"}
    )
    assert refused.status_code == 405


# --- logged out ----------------------------------------------------------------------------


def test_logged_out_requests_are_sent_to_sign_in_and_change_nothing(app, clinic, db):
    failures, checked = [], 0
    for rule, method, url, form in staff_requests(app, clinic):
        client = app.test_client()
        before = snapshot(db)
        response = send(client, method, url, form, token_page="/staff/login")
        problems = [logged_out_problem(method, url, response)]
        if snapshot(db) != before:
            problems.append("changed the database")
        if "visit_id" in rule.arguments:
            missing = send(client, method, url_of(app, rule, clinic, 9999), form, "/staff/login")
            if missing.status_code != response.status_code:
                problems.append("a missing visit answers differently from an existing one")
        failures += [f"{method} {url} ({rule.endpoint}): {p}" for p in problems if p]
        checked += 1
    assert not failures, "\n".join(failures)
    assert checked >= len(ACCESS)


# --- signed in with the wrong role -----------------------------------------------------------


@pytest.mark.parametrize("role", ["frontdesk", "psychiatrist"])
def test_wrong_role_is_refused_and_changes_nothing(app, clinic, db, role):
    client = signed_in(app, role)
    failures, refused = [], 0
    for rule, method, url, form in staff_requests(app, clinic):
        roles, denied = ACCESS[rule.endpoint]
        if role in roles:
            continue
        before = but_refusals(db)  # a refusal writes its audit entry and nothing else
        entries = len(storage.audit_entries(db, action="access_refused", limit=1000))
        response = send(client, method, url, form, token_page="/staff/account")
        if response.status_code != denied:
            failures.append(f"{method} {url}: status {response.status_code}, expected {denied}")
        if but_refusals(db) != before:
            failures.append(f"{method} {url}: changed the database")
        now = storage.audit_entries(db, action="access_refused", limit=1000)
        if refused < app.config["UNSIGNED_AUDIT_PER_CLIENT"]:
            if len(now) != entries + 1:
                failures.append(f"{method} {url}: not audited as refused")
            elif now[0]["detail"] != f"{method} {rule.rule} as {role}":
                failures.append(f"{method} {url}: audited as {now[0]['detail']!r}")
        refused += 1
    assert not failures, "\n".join(failures)
    assert refused > 0
    # At most the limit of entries a person can cause in 15 minutes, then none.
    entries = storage.audit_entries(db, action="access_refused", limit=1000)
    assert len(entries) == min(refused, app.config["UNSIGNED_AUDIT_PER_CLIENT"])


# --- signed in with the right role ------------------------------------------------------------


@pytest.mark.parametrize("endpoint", list(ACCESS))
def test_the_right_roles_are_served_not_sent_to_sign_in(app, clinic, db, endpoint):
    roles, _ = ACCESS[endpoint]
    requests = [r for r in staff_requests(app, clinic) if r[0].endpoint == endpoint]
    assert requests
    for role in roles:
        client = signed_in(app, role)
        if endpoint == "staff.slip":  # the slip shows the link and code just handed out
            send(client, "POST", f"/staff/visits/{clinic.open}/reissue", {}, "/staff/account")
        for _rule, method, url, form in requests:
            if method == "POST" and role != roles[0]:
                continue  # done once, by the least trusted role: a repeat finds nothing to do
            before = snapshot(db, skip=SESSION_TABLES)
            response = send(client, method, url, form, token_page="/staff/account")
            status, location = SERVED.get((endpoint, method), (200, None))
            where = (role, method, url, response.headers.get("Location"))
            assert response.status_code == status, where
            if location is not None:
                assert response.headers["Location"] == location.format(**vars(clinic)), where
            if method == "POST":
                assert snapshot(db, skip=SESSION_TABLES) != before, f"{where} did nothing"

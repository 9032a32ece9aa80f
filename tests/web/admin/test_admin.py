"""Admin pages: access by role, user accounts, clinic settings and the audit log."""

from __future__ import annotations

import html
import re

import pytest
from markupsafe import escape

from patientapp.db import storage
from patientapp.domain.audit_actions import ACTIONS, UnknownAuditAction
from patientapp.web.context import get_db
from tests.conftest import (
    FULL_ANSWERS,
    Patient,
    checked,
    create_user,
    csrf_from,
    finish_visit,
    input_value,
    login,
    make_invitation,
)

PASSWORD = "correct horse battery"
PAGES = ("/staff/admin/users", "/staff/admin/settings", "/staff/admin/audit")


# --- helpers -----------------------------------------------------------------------------


def add_user(app, email: str, role: str, password: str = PASSWORD, name: str = "") -> int:
    """A staff account written straight through storage."""
    return create_user(app, email, role, password=password, name=name)


def log_in(client, email: str, password: str = PASSWORD):
    """Sign in through the real login form."""
    return login(client, email, password)


def submit(client, url: str, data: dict | None = None, page: str | None = None):
    """POST a form with the CSRF token from the page that shows it."""
    token = csrf_from(client.get(page or url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **(data or {})})


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def settings(app) -> dict:
    with app.app_context():
        return storage.get_settings(get_db())


def user(app, email: str) -> dict:
    with app.app_context():
        return storage.user_by_email(get_db(), email)


def audit_rows(app, **filters) -> list[dict]:
    with app.app_context():
        return storage.audit_entries(get_db(), **filters)


@pytest.fixture
def admin(app, client):
    add_user(app, "boss@example.org", "admin", name="Ada Admin")
    assert log_in(client, "boss@example.org").status_code == 302
    return client


GOOD_SETTINGS = {
    "clinic_name": "Riverside Mood Clinic",
    "crisis_text_en": "Call the clinic line: 555-0100.\r\nAfter hours, call 555-0199.",
    "languages": ["en"],
    "invite_extra_days": "2",
    "patient_idle_minutes": "20",
    "retention_days": "400",
    "escalate_after_minutes": "5",
}


# --- access ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_admin_pages_open_for_an_admin(admin, url):
    response = admin.get(url)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("role", ["psychiatrist", "frontdesk"])
@pytest.mark.parametrize("url", [*PAGES, "/staff/admin/users/1"])
def test_other_roles_get_403(app, client, role, url):
    add_user(app, "boss@example.org", "admin")
    add_user(app, f"{role}@example.org", role)
    log_in(client, f"{role}@example.org")
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("role", ["psychiatrist", "frontdesk"])
def test_other_roles_cannot_post_admin_actions(app, client, role):
    target = add_user(app, "boss@example.org", "admin")
    add_user(app, f"{role}@example.org", role)
    log_in(client, f"{role}@example.org")
    assert (
        submit(
            client,
            "/staff/admin/users",
            {
                "email": "x@example.org",
                "display_name": "X",
                "role": "admin",
                "password": PASSWORD,
            },
            page="/staff/",
        ).status_code
        == 403
    )
    assert (
        submit(client, f"/staff/admin/users/{target}/deactivate", page="/staff/").status_code == 403
    )
    assert user(app, "x@example.org") is None and user(app, "boss@example.org")["active"]


@pytest.mark.parametrize("url", PAGES)
def test_logged_out_goes_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/staff/login" in response.headers["Location"]


ADMIN_LINKS = (
    'href="/staff/admin/users"',
    'href="/staff/admin/settings"',
    'href="/staff/admin/audit"',
)


def test_admin_nav_links_show_for_admins_only(app, admin):
    page = text(admin.get("/staff/"))
    assert all(link in page for link in ADMIN_LINKS)
    for role in ("psychiatrist", "frontdesk"):
        add_user(app, f"{role}@example.org", role)
        other = app.test_client()
        log_in(other, f"{role}@example.org")
        for url in ("/staff/", "/staff/invitations/new", "/staff/account"):
            response = other.get(url)
            assert response.status_code == 200, (role, url)
            assert [link for link in ADMIN_LINKS if link in text(response)] == [], (role, url)


# --- users -------------------------------------------------------------------------------


def test_added_user_can_log_in(app, admin):
    response = submit(
        admin,
        "/staff/admin/users",
        {
            "email": "nurse@example.org",
            "display_name": "Noor Nurse",
            "role": "frontdesk",
            "password": "a long new password",
        },
    )
    assert response.status_code == 302
    listing = text(admin.get("/staff/admin/users"))
    assert "nurse@example.org" in listing and "Noor Nurse" in listing
    assert "Front desk" in listing
    other = app.test_client()
    assert log_in(other, "nurse@example.org", "a long new password").status_code == 302
    assert "Noor Nurse" in text(other.get("/staff/"))
    entry = audit_rows(app, action="user_created")[0]
    assert entry["detail"] == "nurse@example.org as frontdesk"
    assert "a long new password" not in entry["detail"]


def test_a_new_account_starts_at_the_least_privilege_and_the_hint_is_true(app, admin):
    """Users offered Admin first, so a hurried admin made admins; the password hint said
    a new user "can't change" a password the My account page lets them change."""
    page = text(admin.get("/staff/admin/users"))
    chosen = r'<option selected value="frontdesk">|<option value="frontdesk" selected>'
    assert re.search(chosen, page)
    assert "selected" not in re.search(r'<option[^>]*value="admin"[^>]*>', page).group(0)
    assert "can&#39;t change it yet" not in page and "can't change it yet" not in page
    assert "they can change it under My account" in page
    add_user(app, "new@example.org", "frontdesk")
    other = app.test_client()
    assert log_in(other, "new@example.org").status_code == 302
    assert "Change password" in text(other.get("/staff/account"))


def test_users_table_has_headers_and_labelled_inputs(admin):
    page = text(admin.get("/staff/admin/users"))
    assert '<th scope="col">' in page and '<th scope="row">' in page
    for field in ("email", "display_name", "role", "password"):
        assert f'for="{field}"' in page and f'id="{field}"' in page
    assert "style=" not in page


def test_duplicate_email_gets_a_clear_message(app, admin):
    add_user(app, "taken@example.org", "psychiatrist")
    response = submit(
        admin,
        "/staff/admin/users",
        {
            "email": "Taken@Example.org",
            "display_name": "Second Person",
            "role": "frontdesk",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 422
    page = text(response)
    assert "There is already an account with this email address." in page
    assert 'value="Second Person"' in page
    assert user(app, "taken@example.org")["role"] == "psychiatrist"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("password", "short", "Please use at least 10 characters."),
        ("email", "not-an-email", "Please enter an email address like name@example.org."),
        ("display_name", "", "Please enter a name."),
        ("role", "superuser", "Not a valid choice"),
    ],
)
def test_bad_new_user_keeps_what_was_typed(app, admin, field, value, message):
    data = {
        "email": "new@example.org",
        "display_name": "New Person",
        "role": "psychiatrist",
        "password": PASSWORD,
        field: value,
    }
    response = submit(admin, "/staff/admin/users", data)
    assert response.status_code == 422
    page = text(response)
    assert message in page
    if field != "email":
        assert 'value="new@example.org"' in page
    if field != "display_name":
        assert 'value="New Person"' in page
    assert user(app, "new@example.org") is None


def test_deactivating_ends_the_users_live_session(app, admin):
    target = add_user(app, "desk@example.org", "frontdesk")
    desk = app.test_client()
    log_in(desk, "desk@example.org")
    assert desk.get("/staff/").status_code == 200
    response = submit(
        admin, f"/staff/admin/users/{target}/deactivate", page=f"/staff/admin/users/{target}"
    )
    assert response.status_code == 302
    after = desk.get("/staff/")
    assert after.status_code == 302 and "/staff/login" in after.headers["Location"]
    assert log_in(desk, "desk@example.org").status_code == 401
    assert not user(app, "desk@example.org")["active"]
    assert audit_rows(app, action="user_deactivated")[0]["detail"] == "desk@example.org"
    assert "Deactivated" in text(admin.get("/staff/admin/users"))


def test_reactivated_user_can_sign_in_again(app, admin):
    target = add_user(app, "desk@example.org", "frontdesk")
    page = f"/staff/admin/users/{target}"
    submit(admin, f"{page}/deactivate", page=page)
    submit(admin, f"{page}/reactivate", page=page)
    assert user(app, "desk@example.org")["active"]
    assert log_in(app.test_client(), "desk@example.org").status_code == 302


def test_admin_cannot_deactivate_themselves(app, admin):
    me = user(app, "boss@example.org")["id"]
    page = f"/staff/admin/users/{me}"
    assert "Deactivate account" not in text(admin.get(page))
    response = submit(admin, f"{page}/deactivate", page=page)
    assert response.status_code == 302
    assert user(app, "boss@example.org")["active"]
    assert "can't deactivate your own account" in text(admin.get(page))
    assert admin.get("/staff/admin/users").status_code == 200


def test_change_role_takes_effect_at_once(app, admin):
    target = add_user(app, "desk@example.org", "frontdesk")
    desk = app.test_client()
    log_in(desk, "desk@example.org")
    page = f"/staff/admin/users/{target}"
    assert submit(admin, f"{page}/role", {"role": "admin"}, page=page).status_code == 302
    assert user(app, "desk@example.org")["role"] == "admin"
    assert desk.get("/staff/admin/users").status_code == 200
    entry = audit_rows(app, action="user_updated")[0]
    assert entry["detail"] == "desk@example.org: role frontdesk -> admin"


def test_admin_cannot_change_their_own_role(app, admin):
    me = user(app, "boss@example.org")["id"]
    page = f"/staff/admin/users/{me}"
    response = submit(admin, f"{page}/role", {"role": "frontdesk"}, page=page)
    assert response.status_code == 422
    assert "You can't change your own role." in text(response)
    assert user(app, "boss@example.org")["role"] == "admin"


def test_set_password_replaces_the_old_one_and_ends_sessions(app, admin):
    target = add_user(app, "dr@example.org", "psychiatrist")
    doctor = app.test_client()
    log_in(doctor, "dr@example.org")
    page = f"/staff/admin/users/{target}"
    response = submit(admin, f"{page}/password", {"password": "a brand new secret"}, page=page)
    assert response.status_code == 302
    assert doctor.get("/staff/").status_code == 302
    assert log_in(app.test_client(), "dr@example.org").status_code == 401
    assert log_in(app.test_client(), "dr@example.org", "a brand new secret").status_code == 302
    entry = audit_rows(app, action="user_updated")[0]
    assert entry["detail"] == "dr@example.org: password set"


def test_short_new_password_is_refused(app, admin):
    target = add_user(app, "dr@example.org", "psychiatrist")
    page = f"/staff/admin/users/{target}"
    response = submit(admin, f"{page}/password", {"password": "short"}, page=page)
    assert response.status_code == 422
    assert "Please use at least 10 characters." in text(response)
    assert log_in(app.test_client(), "dr@example.org").status_code == 302


def test_unknown_user_is_404(admin):
    assert admin.get("/staff/admin/users/999").status_code == 404


# --- settings ----------------------------------------------------------------------------


def test_settings_show_current_values(app, admin):
    page = admin.get("/staff/admin/settings").get_data(as_text=True)
    assert input_value(page, "retention_days") == "365"
    assert input_value(page, "patient_idle_minutes") == "15"
    assert input_value(page, "invite_extra_days") == "0"
    # Nothing stored yet means every offered language is offered, so all are ticked.
    assert checked(page, "languages") == app.config["OFFERED_LANGUAGES"]
    assert "style=" not in page


def test_settings_lead_to_both_mail_pages(app, admin):
    """Found on a walk: Settings linked only the alert e-mail's page; the invitations'
    and reminders' page was reached only from there."""
    page = admin.get("/staff/admin/settings").get_data(as_text=True)
    for path in ("/staff/admin/mail", "/staff/admin/messages"):
        assert f'href="{path}"' in page, path
        assert admin.get(path).status_code == 200
    assert "Invitations by e-mail and text: the reminder, quiet hours" in page


def test_saved_settings_reach_the_patient(app, admin):
    response = submit(
        admin,
        "/staff/admin/settings",
        {**GOOD_SETTINGS, "languages": app.config["OFFERED_LANGUAGES"]},
    )
    assert response.status_code == 302
    saved = settings(app)
    assert saved["clinic_name"] == "Riverside Mood Clinic"
    assert saved["crisis_texts"] == {
        "en": "Call the clinic line: 555-0100.\nAfter hours, call 555-0199."
    }
    assert (saved["invite_extra_days"], saved["patient_idle_minutes"], saved["retention_days"]) == (
        2,
        20,
        400,
    )
    entry = audit_rows(app, action="settings_changed")[0]
    assert entry["detail"] == (
        "clinic_name, crisis_texts, invite_extra_days, patient_idle_minutes, retention_days"
    )
    invitation = make_invitation(app)
    patient = Patient(app.test_client())
    welcome = text(patient.open(invitation.token))
    assert "Riverside Mood Clinic" in welcome
    assert (
        'Call the clinic line: <a class="tel" href="tel:5550100" dir="ltr">555-0100</a>.\n'
        'After hours, call <a class="tel" href="tel:5550199" dir="ltr">555-0199</a>.'
    ) in welcome


def test_saving_unchanged_settings_writes_nothing(app, admin):
    page = admin.get("/staff/admin/settings")
    response = admin.post(
        "/staff/admin/settings",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "clinic_name": "",
            "crisis_text_en": "",
            "languages": app.config["OFFERED_LANGUAGES"],
            "invite_extra_days": "0",
            "patient_idle_minutes": "15",
            "retention_days": "365",
            "escalate_after_minutes": "5",
        },
    )
    assert response.status_code == 302
    assert settings(app) == {}
    assert audit_rows(app, action="settings_changed") == []
    assert "Nothing was changed." in text(admin.get("/staff/admin/settings"))


def test_invitation_lifetime_setting_moves_the_expiry(app, admin):
    submit(admin, "/staff/admin/settings", GOOD_SETTINGS)
    result = app.test_cli_runner().invoke(args=["invite", "RB-1", "--at", "2026-11-25 15:00"])
    assert "Expires: 2026-11-27 23:59" in result.output


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("clinic_name", "x" * 121, "Please keep this to 120 characters or fewer."),
        ("crisis_text_en", "y" * 1001, "Please keep this to 1000 characters or fewer."),
        ("languages", [], "Please offer at least one language."),
        ("languages", ["xx"], "is not a valid choice"),
        ("invite_extra_days", "15", "Please enter a whole number from 0 to 14."),
        ("invite_extra_days", "-1", "Please enter a whole number from 0 to 14."),
        ("invite_extra_days", "two", "Please enter a whole number from 0 to 14."),
        ("patient_idle_minutes", "4", "Please enter a whole number from 5 to 120."),
        ("patient_idle_minutes", "121", "Please enter a whole number from 5 to 120."),
        ("patient_idle_minutes", "", "Please enter a whole number from 5 to 120."),
        ("retention_days", "29", "Please enter a whole number from 30 to 3650."),
        ("retention_days", "3651", "Please enter a whole number from 30 to 3650."),
        ("retention_days", "1.5", "Please enter a whole number from 30 to 3650."),
        ("escalate_after_minutes", "0", "Please enter a whole number from 1 to 120."),
        ("escalate_after_minutes", "", "Please enter a whole number from 1 to 120."),
    ],
)
def test_bad_setting_keeps_everything_else_and_saves_nothing(app, admin, field, value, message):
    response = submit(admin, "/staff/admin/settings", {**GOOD_SETTINGS, field: value})
    assert response.status_code == 422
    page = text(response)
    assert message in page
    assert "Nothing was saved." in page
    for other, typed in GOOD_SETTINGS.items():
        if other == field or other == "languages":
            continue
        shown = typed.replace("\r\n", "\n")
        assert (f'value="{shown}"' in page) if other != "crisis_text_en" else (shown in page), other
    assert settings(app) == {}
    assert audit_rows(app, action="settings_changed") == []


def assert_kept(page: str, typed: dict) -> None:
    """Every value typed is back in its box (page: the HTML as sent)."""
    for name, value in typed.items():
        if name == "languages":
            assert checked(page, "languages") == value
        elif name.startswith("crisis_text"):
            assert html.escape(value.replace("\r\n", "\n"), quote=False) in page, name
        else:
            assert input_value(page, name) == value, name


MARKUP_ZONE = '"><img/src=x/onerror=alert(44)>'


def test_a_time_zone_with_markup_is_shown_escaped_and_the_rest_kept(app, admin):
    """Issue 19: the name typed went unescaped into the error (a lazy translation counts
    as safe HTML in Jinja)."""
    typed = {**GOOD_SETTINGS, "time_zone": MARKUP_ZONE}
    response = submit(admin, "/staff/admin/settings", typed)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "<img" not in page
    escaped = str(escape(MARKUP_ZONE))
    assert f"There is no time zone called “{escaped}”" in page
    assert_kept(page, typed)
    assert settings(app) == {}


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("Europe", "No existe ninguna zona horaria llamada “Europe”."),
        ("Etc", "No existe ninguna zona horaria llamada “Etc”."),
        ("America/", "No existe ninguna zona horaria llamada “America/”."),
        ("z" * 300, "Use 64 caracteres o menos, por favor."),
    ],
)
def test_a_time_zone_naming_a_folder_or_too_long_is_a_translated_message(app, admin, zone, message):
    """Issue 19: a folder of the zone database, or a name too long for a file name, gave
    a 500. Now it is a message in the admin's language, with all else typed kept."""
    typed = {**GOOD_SETTINGS, "time_zone": zone}
    token = csrf_from(admin.get("/staff/admin/settings").get_data(as_text=True))
    response = admin.post(
        "/staff/admin/settings",
        data={"csrf_token": token, **typed},
        headers={"Accept-Language": "es"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in html.unescape(page)
    assert page.count('class="error"') == 1
    assert_kept(page, typed)
    assert settings(app) == {}


def test_languages_can_be_narrowed(app, admin):
    offered = app.config["OFFERED_LANGUAGES"]
    if len(offered) < 2 or "es" not in offered:
        pytest.skip("needs at least English and Spanish catalogs")
    submit(admin, "/staff/admin/settings", {**GOOD_SETTINGS, "languages": ["en", "es"]})
    assert settings(app)["languages"] == ["en", "es"]
    page = admin.get("/staff/admin/settings").get_data(as_text=True)
    assert checked(page, "languages") == ["en", "es"]
    with app.test_request_context():
        from patientapp.i18n import offered_languages

        assert offered_languages() == ["en", "es"]


# --- audit log ---------------------------------------------------------------------------


def seed_audit(app, entries):
    with app.app_context():
        for action, visit_id, detail in entries:
            storage.audit(
                get_db(),
                action,
                now=app.config["CLOCK"](),
                actor="seed",
                visit_id=visit_id,
                detail=detail,
            )


def audit_table(response) -> str:
    page = text(response)
    start = page.find("<table")
    return page[start : page.find("</table>", start)] if start >= 0 else ""


def test_audit_log_shows_entries_with_headers(app, admin):
    seed_audit(app, [("summary_viewed", 7, "")])
    page = text(admin.get("/staff/admin/audit"))
    for header in ("Time", "Who", "Action", "Visit", "Detail"):
        assert f'<th scope="col">{header}</th>' in page
    table = audit_table(admin.get("/staff/admin/audit"))
    # Named in words, the code beside; the time in the reader's format.
    assert "Summary read<br><code" in table and "summary_viewed" in table
    assert "Signed in<br><code" in table
    assert "Nov 25, 2026, 9:00:00" in table
    assert "boss@example.org" in page  # the admin's own login
    for field in ("action", "user", "visit", "since", "until"):
        assert f'for="{field}"' in page


def catalog_name(app, message: str, language: str) -> str:
    """A message as the language's catalog gives it."""
    from flask_babel import force_locale, gettext

    with app.test_request_context(), force_locale(language):
        return gettext(message)


@pytest.mark.parametrize("language", ["es", "ar", "zh_Hans"])
def test_audit_log_names_actions_actors_and_times_in_the_readers_language(app, admin, language):
    seed_audit(app, [("summary_viewed", 7, "")])
    with app.app_context():
        db = get_db()
        moment = app.config["CLOCK"]()
        with storage.write(db):
            storage.audit(db, "fhir_flag_read", now=moment, actor="api:EHR feed", visit_id=7)
            storage.audit(db, "messages_opted_out", now=moment, actor="patient", visit_id=7)
            with pytest.warns(UnknownAuditAction):
                storage.audit(db, "retired_action", now=moment, actor="delivery")
    page = text(admin.get(f"/staff/admin/audit?lang={language}"))
    table = audit_table_of(page)
    for message in ("Summary read", "FHIR: safety alert read", "Patient stopped messages"):
        name = catalog_name(app, message, language)
        assert name != message, f"{message!r} is not translated in {language}"
        assert name in table, name
    for message in ("The patient", "Message delivery"):
        assert catalog_name(app, message, language) in table
    assert catalog_name(app, "API token %(name)s", language) % {"name": "EHR feed"} in table
    assert "retired_action" in table  # an older version's action shows as its code
    # The filter offers each action by its name, the code as its value.
    summary = catalog_name(app, "Summary read", language)
    assert f'<option value="summary_viewed">{summary}</option>' in page
    assert "2026-11-25 09:00:00" not in table.replace('datetime="2026-11-25 09:00:00"', "")


def audit_table_of(page: str) -> str:
    start = page.find("<table")
    return page[start : page.find("</table>", start)] if start >= 0 else ""


def test_reading_the_audit_log_is_audited_with_its_filters(app, admin):
    me = user(app, "boss@example.org")["id"]
    seed_audit(app, [("summary_viewed", 8, "")])
    admin.get("/staff/admin/audit?action=summary_viewed&visit=8&page=2&user=x")
    entry = audit_rows(app, action="audit_log_viewed")[0]
    assert entry["user_id"] == me and entry["visit_id"] is None
    assert entry["detail"] == "action=summary_viewed visit=8 page=2"
    # The reader sees their own read at the top.
    table = audit_table(admin.get("/staff/admin/audit"))
    assert table.index("audit_log_viewed") < table.index("login")


def test_an_action_without_a_name_warns_where_it_is_written(app):
    with app.app_context(), pytest.warns(UnknownAuditAction, match="no_such_action"):
        storage.audit(get_db(), "no_such_action", now=app.config["CLOCK"]())
    assert "summary_viewed" in ACTIONS


def test_audit_log_filters_by_action(app, admin):
    seed_audit(app, [("summary_viewed", 7, ""), ("invitation_created", 8, "")])
    table = audit_table(admin.get("/staff/admin/audit?action=invitation_created"))
    assert "invitation_created" in table
    assert "summary_viewed" not in table and "login" not in table


def test_audit_log_filters_by_visit_and_user(app, admin):
    seed_audit(app, [("summary_viewed", 7, "seven"), ("summary_viewed", 8, "eight")])
    table = audit_table(admin.get("/staff/admin/audit?visit=8"))
    assert "eight" in table and "seven" not in table
    me = user(app, "boss@example.org")["id"]
    table = audit_table(admin.get(f"/staff/admin/audit?user={me}"))
    assert "login" in table and "summary_viewed" not in table


def test_audit_log_filters_by_dates(app, admin, clock):
    seed_audit(app, [("backup", None, "first day")])
    clock.advance(days=2)
    seed_audit(app, [("purge", None, "third day")])
    log_in(admin, "boss@example.org")  # two days on, the first session has timed out
    table = audit_table(admin.get("/staff/admin/audit?since=2026-11-26&until=2026-11-27"))
    assert "third day" in table and "first day" not in table
    table = audit_table(admin.get("/staff/admin/audit?until=2026-11-25"))
    assert "first day" in table and "third day" not in table


@pytest.mark.parametrize(
    "query",
    [
        "visit=abc",
        "visit=99999999999999999999",
        "since=2026-13-40",
        "until=yesterday",
        "action=no_such_action",
        "user=not-a-number",
        "user=999",
        "page=-3",
        "page=abc",
        "page=99999999999999999999999",
        "action=%00",
    ],
)
def test_bad_audit_filters_are_ignored_with_a_message(app, admin, query):
    seed_audit(app, [("summary_viewed", 7, "")])
    response = admin.get(f"/staff/admin/audit?{query}")
    assert response.status_code == 200
    page = text(response)
    if not query.startswith("page="):
        assert "Some filters could not be understood and were ignored." in page
        assert "summary_viewed" in audit_table(response)


def test_audit_log_pages_by_100(app, admin):
    seed_audit(app, [("summary_printed", i, f"n{i}") for i in range(250)])
    first = text(admin.get("/staff/admin/audit?action=summary_printed"))
    assert first.count("<tr>") == 101  # header row + 100 entries
    assert "page=2" in first and 'rel="prev"' not in first
    last = text(admin.get("/staff/admin/audit?action=summary_printed&page=3"))
    assert last.count("<tr>") == 51 and 'rel="next"' not in last
    assert "action=summary_printed" in last and "page=2" in last


def test_audit_log_never_shows_answer_content(app, admin):
    finish_visit(app, in_person=["F2"])
    add_user(app, "dr@example.org", "psychiatrist")
    doctor = app.test_client()
    log_in(doctor, "dr@example.org")
    assert doctor.get("/staff/visits/1/summary").status_code == 200
    doctor.get("/staff/visits/1/summary.txt")
    page = text(admin.get("/staff/admin/audit"))
    assert "summary_viewed" in page and "summary_exported" in page
    for step in FULL_ANSWERS.values():
        for value in step.values():
            if isinstance(value, str) and len(value) > 12:
                assert value not in page, value
    assert "Sertraline" not in page

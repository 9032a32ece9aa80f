"""Every audited change writes the change and its audit entry in one transaction.

Found with the audit write failing ("database is locked"): cancelling a visit answered
503 "not saved" while the visit was stored as cancelled with no audit entry. Here the
audit write fails for each kind of staff, admin and terminal action, and the database
must be exactly as before: nothing changed without its entry."""

from __future__ import annotations

import sqlite3

import pytest
from sqlite_utils import Database

from patientapp.db import storage
from patientapp.web.context import get_db
from tests.conftest import (
    FULL_ANSWERS,
    create_user,
    csrf_from,
    enrol,
    finish_visit,
    login,
    make_invitation,
    staff_post,
)

# What an action may change; the audit log, sign-in failures and session touches aside.
TABLES = ("users", "visits", "alerts", "settings", "api_tokens", "recovery_codes")


def snapshot(app) -> dict:
    with app.app_context():
        db = get_db()
        state = {table: db.execute(f"SELECT * FROM {table}").fetchall() for table in TABLES}
        state["sessions"] = db.execute(
            "SELECT id, user_id, ended_at FROM staff_sessions"
        ).fetchall()
        return state


def audit_rows(app) -> int:
    with app.app_context():
        return get_db().execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]


@pytest.fixture
def failing_audit(monkeypatch):
    """From now on every audit entry fails as a locked database does."""

    def fail(*_args, **_kwargs):
        raise sqlite3.OperationalError("database is locked")

    return lambda: monkeypatch.setattr(storage, "audit", fail)


def assert_nothing_changed(app, before: dict, entries: int, response) -> None:
    assert response.status_code == 503, response.status_code
    assert snapshot(app) == before
    assert audit_rows(app) == entries


@pytest.fixture
def desk(app, client):
    create_user(app, "desk@example.org", "frontdesk", name="Sam")
    assert login(client, "desk@example.org").status_code == 302
    return client


@pytest.fixture
def admin(app, client):
    create_user(app, "boss@example.org", "admin", name="Ada")
    assert login(client, "boss@example.org").status_code == 302
    return client


def _alerted_visit(app):
    answers = dict(FULL_ANSWERS)
    answers[10] = {"S1": "nearly_every_day"}
    return finish_visit(app, answers, ref="ALERT-1")


STAFF_ACTIONS = {
    "cancel": lambda app, visit: (f"/staff/visits/{visit.visit_id}/cancel", {}),
    "reissue": lambda app, visit: (f"/staff/visits/{visit.visit_id}/reissue", {}),
    "acknowledge": lambda app, visit: (
        f"/staff/visits/{_alerted_visit(app).visit_id}/acknowledge",
        {},
    ),
    "invite": lambda app, visit: (
        "/staff/invitations/new",
        {
            "patient_ref": "NEW-1",
            "day": "2026-11-25",
            "time": "15:00",
            "psychiatrist": "0",
            "language": "",
        },
    ),
    "tablet": lambda app, visit: ("/staff/tablet", {}),
}


@pytest.mark.parametrize("action", STAFF_ACTIONS)
def test_a_staff_action_whose_entry_fails_changes_nothing(app, desk, failing_audit, action):
    visit = make_invitation(app)
    url, data = STAFF_ACTIONS[action](app, visit)
    before, entries = snapshot(app), audit_rows(app)
    failing_audit()
    page = "/staff/invitations/new" if action == "invite" else "/staff/"
    assert_nothing_changed(app, before, entries, staff_post(desk, url, data, page=page))


def test_marking_reviewed_whose_entry_fails_changes_nothing(app, client, failing_audit):
    create_user(app, "dr@example.org", "psychiatrist", name="Dr. Lee")
    visit = finish_visit(app)
    login(client, "dr@example.org")
    page = f"/staff/visits/{visit.visit_id}/summary"
    html_page = client.get(page)
    assert html_page.status_code == 200
    before, entries = snapshot(app), audit_rows(app)
    failing_audit()
    response = staff_post(client, f"/staff/visits/{visit.visit_id}/reviewed", page="/staff/")
    assert_nothing_changed(app, before, entries, response)


def _other_user(app) -> int:
    return create_user(app, "other@example.org", "frontdesk", name="Otto")


def _enrolled_user(app) -> int:
    user_id = _other_user(app)
    enrol(app, user_id)
    return user_id


ADMIN_ACTIONS = {
    "create user": lambda app: (
        "/staff/admin/users",
        {
            "email": "new@example.org",
            "display_name": "New Person",
            "role": "frontdesk",
            "password": "violet kettle harbour",
        },
        "/staff/admin/users",
    ),
    "role": lambda app: (f"/staff/admin/users/{_other_user(app)}/role", {"role": "admin"}, None),
    "password": lambda app: (
        f"/staff/admin/users/{_other_user(app)}/password",
        {"password": "violet kettle harbour", "confirm": "violet kettle harbour"},
        None,
    ),
    "mfa reset": lambda app: (f"/staff/admin/users/{_enrolled_user(app)}/mfa/reset", {}, None),
    "deactivate": lambda app: (f"/staff/admin/users/{_other_user(app)}/deactivate", {}, None),
    "settings": lambda app: (
        "/staff/admin/settings",
        {
            "clinic_name": "Riverside",
            "languages": ["en", "es"],
            "invite_extra_days": "0",
            "patient_idle_minutes": "15",
            "retention_days": "365",
            "escalate_after_minutes": "5",
            "time_zone": "",
        },
        "/staff/admin/settings",
    ),
    "token": lambda app: (
        "/staff/admin/integrations",
        {"name": "EHR feed"},
        "/staff/admin/integrations",
    ),
}


@pytest.mark.parametrize("action", ADMIN_ACTIONS)
def test_an_admin_action_whose_entry_fails_changes_nothing(app, admin, failing_audit, action):
    url, data, page = ADMIN_ACTIONS[action](app)
    if page is None:
        page = "/".join(url.split("/")[:5])  # the account's own page
    before, entries = snapshot(app), audit_rows(app)
    failing_audit()
    assert_nothing_changed(app, before, entries, staff_post(admin, url, data, page=page))


def test_revoking_a_token_whose_entry_fails_changes_nothing(app, admin, failing_audit):
    from patientapp.domain import api_tokens

    with app.app_context():
        token_id, _secret = api_tokens.create_token(get_db(), "feed", None, app.config["CLOCK"]())
    before, entries = snapshot(app), audit_rows(app)
    failing_audit()
    response = staff_post(
        admin, f"/staff/admin/integrations/{token_id}/revoke", page="/staff/admin/integrations"
    )
    assert_nothing_changed(app, before, entries, response)


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["create-user", "--role", "admin", "new@example.org"], "violet kettle harbour\n"),
        (["invite", "A-77"], None),
        (["demo"], None),
    ],
)
def test_a_command_whose_entry_fails_changes_nothing(app, runner, failing_audit, args, stdin):
    before, entries = snapshot(app), audit_rows(app)
    failing_audit()
    result = runner.invoke(args=args, input=stdin)
    assert result.exit_code != 0
    assert snapshot(app) == before
    assert audit_rows(app) == entries


def test_a_backup_whose_entry_fails_leaves_no_copy(app, runner, failing_audit, tmp_path):
    target = tmp_path / "copy.db"
    failing_audit()
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code != 0
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".copy.db")] == []


def test_a_tablet_switch_whose_commit_fails_leaves_the_staff_member_signed_in(
    app, desk, monkeypatch
):
    """The session row and the cookie go together: a 503 must not sign the browser out
    while the server still holds its session open."""
    page = desk.get("/staff/").get_data(as_text=True)
    real_commit = Database.commit

    def locked_commit(self):
        monkeypatch.setattr(Database, "commit", real_commit)  # this one commit only
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Database, "commit", locked_commit)
    response = desk.post("/staff/tablet", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 503
    assert desk.get("/staff/").status_code == 200


def test_a_new_accounts_password_is_hashed_before_the_write_lock(app, admin, monkeypatch):
    """Hashing takes a good part of a second by design: under the write lock every
    patient's save would wait for it."""
    from patientapp.domain import accounts

    queue = storage._thread_lock(f"{app.config['DATABASE']}.lock")
    held_while_hashing = []
    real_hash = accounts.hash_password  # as checked_account calls it

    def spy(password):
        held_while_hashing.append(queue.locked())
        return real_hash(password)

    monkeypatch.setattr(accounts, "hash_password", spy)
    data = {
        "email": "new@example.org",
        "display_name": "New Person",
        "role": "frontdesk",
        "password": "violet kettle harbour",
    }
    response = staff_post(admin, "/staff/admin/users", data, page="/staff/admin/users")
    assert response.status_code == 302
    assert held_while_hashing == [False]

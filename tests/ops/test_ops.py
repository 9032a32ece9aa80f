"""Operations commands: create-user, backup, purge and demo."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import segno

from patientapp.cli import accounts, demo
from patientapp.db import storage
from patientapp.domain.records import Visit
from patientapp.web.context import base_url, get_db
from tests.conftest import (
    FULL_ANSWERS,
    create_user,
    csrf_from,
    finish_visit,
    login,
    make_invitation,
)

ROOT = Path(__file__).resolve().parents[2]

PASSWORD = "correct horse battery"
TABLES = ("users", "visits", "answers", "alerts")


# --- helpers -----------------------------------------------------------------------------


def add_user(app, email: str, role: str, password: str = PASSWORD, name: str = "") -> int:
    """A staff account written straight through storage."""
    return create_user(app, email, role, password=password, name=name)


def log_in(client, email: str, password: str = PASSWORD):
    """Sign in through the real login form."""
    return login(client, email, password)


def counts(path) -> dict[str, int]:
    conn = sqlite3.connect(str(path))
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def audit_rows(app, action: str) -> list[dict]:
    with app.app_context():
        return storage.audit_entries(get_db(), action=action)


def all_visits(app) -> list[Visit]:
    """Every visit, by walking ids on a fresh database (ids start at 1, none deleted)."""
    found = []
    with app.app_context():
        while (visit := storage.get_visit(get_db(), len(found) + 1)) is not None:
            found.append(visit)
    return found


def all_visits_left(app) -> list[Visit]:
    """The visits still stored after a purge (ids have gaps then)."""
    with app.app_context():
        return [v for i in range(1, 20) if (v := storage.get_visit(get_db(), i))]


def user(app, email: str) -> dict | None:
    with app.app_context():
        return storage.user_by_email(get_db(), email)


# --- create-user -------------------------------------------------------------------------


def test_create_user_reads_the_password_from_stdin(app, runner):
    result = runner.invoke(
        args=["create-user", "--role", "psychiatrist", "dr.new@example.org", "--name", "Dr. New"],
        input="a long password here\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created psychiatrist account dr.new@example.org." in result.output
    account = user(app, "dr.new@example.org")
    assert account["display_name"] == "Dr. New" and account["role"] == "psychiatrist"
    assert (
        log_in(app.test_client(), "dr.new@example.org", "a long password here").status_code == 302
    )
    entry = audit_rows(app, "user_created")[0]
    assert entry["actor"] == "cli" and entry["detail"] == "dr.new@example.org as psychiatrist"
    assert "a long password here" not in entry["detail"]


def test_create_user_keeps_spaces_inside_the_password(app, runner):
    result = runner.invoke(
        args=["create-user", "--role", "admin", "a@example.org"], input=" spaced  password \r\n"
    )
    assert result.exit_code == 0, result.output
    assert log_in(app.test_client(), "a@example.org", " spaced  password ").status_code == 302


def test_create_user_prompts_twice_at_a_terminal(app, runner, monkeypatch):
    monkeypatch.setattr(accounts, "_at_terminal", lambda: True)
    typed = "first try here\nsecond try here\n" + "a long password here\n" * 2
    result = runner.invoke(
        args=["create-user", "--role", "frontdesk", "d@example.org"], input=typed
    )
    assert result.exit_code == 0, result.output
    assert "Password again" in result.output and "do not match" in result.output
    assert "a long password here" not in result.output  # hidden input is not echoed
    assert log_in(app.test_client(), "d@example.org", "a long password here").status_code == 302


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "admin", "a@example.org"], "short\n", "Please use at least 10 characters."),
        (["--role", "admin", "a@example.org"], "", "Please use at least 10 characters."),
        (["--role", "admin", "not-an-email"], PASSWORD + "\n", "email address"),
        (["--role", "admin", "a b@example.org"], PASSWORD + "\n", "email address"),
    ],
)
def test_create_user_refuses_bad_input(app, runner, args, stdin, message):
    result = runner.invoke(args=["create-user", *args], input=stdin)
    assert result.exit_code == 1
    assert message in result.output
    with app.app_context():
        assert storage.count_users(get_db()) == 0


def test_create_user_refuses_a_duplicate_email(app, runner):
    add_user(app, "taken@example.org", "frontdesk")
    result = runner.invoke(
        args=["create-user", "--role", "admin", "TAKEN@example.org"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert user(app, "taken@example.org")["role"] == "frontdesk"


@pytest.mark.parametrize(
    "args",
    [
        ["--role", "owner", "a@example.org"],
        ["a@example.org"],
    ],
)
def test_create_user_needs_a_known_role(app, runner, args):
    result = runner.invoke(args=["create-user", *args], input=PASSWORD + "\n")
    assert result.exit_code == 2
    assert user(app, "a@example.org") is None


# --- backup ------------------------------------------------------------------------------


def test_backup_is_a_consistent_copy_while_a_reader_is_open(app, runner, tmp_path):
    add_user(app, "dr@example.org", "psychiatrist")
    finish_visit(app)
    finish_visit(app, ref="A-1002", answers={**FULL_ANSWERS, 10: {"S1": "several_days"}})
    expected = counts(app.config["DATABASE"])
    reader = sqlite3.connect(app.config["DATABASE"], isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == expected["answers"]
    target = tmp_path / "copy.db"
    try:
        result = runner.invoke(args=["backup", str(target)])
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert result.exit_code == 0, result.output
    assert str(target) in result.output and "bytes" in result.output
    assert counts(target) == expected and expected["alerts"] == 1
    copy = sqlite3.connect(str(target))
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copy.close()
    assert target.stat().st_mode & 0o077 == 0
    assert str(target) in audit_rows(app, "backup")[0]["detail"]


def test_backup_refuses_to_overwrite_without_force(app, runner, tmp_path):
    target = tmp_path / "old.db"
    target.write_text("precious")
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 1 and "--force" in result.output
    assert target.read_text() == "precious"
    result = runner.invoke(args=["backup", "--force", str(target)])
    assert result.exit_code == 0, result.output
    assert counts(target)["visits"] == 0
    assert list(tmp_path.glob(".old.db.*")) == []  # no temporary file left behind


def test_backup_refuses_the_live_database_and_missing_folders(app, runner, tmp_path):
    result = runner.invoke(args=["backup", "--force", app.config["DATABASE"]])
    assert result.exit_code == 1 and "live database" in result.output
    result = runner.invoke(args=["backup", str(tmp_path / "nowhere" / "copy.db")])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert counts(app.config["DATABASE"])["users"] == 0


# --- purge -------------------------------------------------------------------------------


@pytest.fixture
def aged_visits(app, clock):
    """Two visits from 400 days ago (one with an alert) and one from today."""
    today = clock.moment
    clock.moment = today - timedelta(days=400)
    finish_visit(app, ref="OLD-1", answers={**FULL_ANSWERS, 10: {"S1": "several_days"}})
    finish_visit(app, ref="OLD-2")
    clock.moment = today
    finish_visit(app, ref="NEW-1")
    with app.app_context():
        old_answers = sum(len(storage.answers_for(get_db(), i)[0]) for i in (1, 2))
    return old_answers


def test_purge_dry_run_removes_nothing(app, runner, aged_visits):
    before = counts(app.config["DATABASE"])
    result = runner.invoke(args=["purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"would remove 2 visits ({aged_visits} answers, 1 safety alert)" in result.output
    assert counts(app.config["DATABASE"]) == before
    assert audit_rows(app, "purge") == []


def test_purge_removes_only_visits_older_than_retention(app, runner, aged_visits):
    before = counts(app.config["DATABASE"])
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert f"Removed 2 visits ({aged_visits} answers, 1 safety alert)" in result.output
    assert "before 2025-11-25" in result.output
    after = counts(app.config["DATABASE"])
    assert after["visits"] == 1 and after["alerts"] == 0
    assert after["answers"] == before["answers"] - aged_visits
    assert [v.patient_ref for v in all_visits_left(app)] == ["NEW-1"]
    entry = audit_rows(app, "purge")[0]
    assert entry["actor"] == "cli"
    assert entry["detail"] == (f"visits=2 answers={aged_visits} alerts=1 before=2025-11-25")


def test_purge_follows_the_retention_setting_to_the_day(app, runner, clock):
    with app.app_context():
        storage.save_settings(get_db(), {"retention_days": 30})
    today = clock.moment
    make_invitation(app, "KEEP", when=(today - timedelta(days=30)).replace(hour=0, minute=0))
    make_invitation(app, "GONE", when=(today - timedelta(days=31)).replace(hour=23, minute=59))
    result = runner.invoke(args=["purge"])
    assert "Removed 1 visit (0 answers, 0 safety alerts)" in result.output
    assert [v.patient_ref for v in all_visits_left(app)] == ["KEEP"]


# --- demo --------------------------------------------------------------------------------


def test_demo_fills_a_fresh_database_and_refuses_a_second_time(app, runner):
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    for email in ("demo-admin@example.org", "dr.rivera@example.org", "desk@example.org"):
        assert email in result.output
    assert demo.DEMO_PASSWORD in result.output and "WARNING" in result.output
    assert "/staff/login" in result.output
    visits = all_visits(app)
    again = runner.invoke(args=["demo"])
    assert again.exit_code == 1 and "--force" in again.output
    assert len(all_visits(app)) == len(visits)
    forced = runner.invoke(args=["demo", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "already existed" in forced.output
    assert len(all_visits(app)) == 2 * len(visits)


def test_demo_visits_cover_every_case(app, runner, clock):
    assert runner.invoke(args=["demo"]).exit_code == 0
    visits = {(v.patient_ref, v.day.isoformat()): v for v in all_visits(app)}
    statuses = sorted(v.status for v in visits.values())
    assert statuses.count("submitted") == 6 and statuses.count("reviewed") == 1
    assert {"invited", "in_progress"} <= set(statuses)
    today, four_weeks_ago = clock.moment.date(), clock.moment.date() - timedelta(days=28)
    assert sorted({day for _ref, day in visits}) == [four_weeks_ago.isoformat(), today.isoformat()]
    assert visits[("RB-1187", four_weeks_ago.isoformat())].status == "reviewed"
    busy = next(v for v in visits.values() if v.status == "in_progress")
    assert busy.current_step == 3
    spanish = next(v for v in visits.values() if v.answer_language == "es")
    assert spanish.status == "submitted"
    with app.app_context():
        db = get_db()
        alerts = [storage.alert_for(db, v.id) for v in visits.values()]
        open_alerts = storage.open_alerts(db)
        held = [storage.answers_for(db, v.id)[1] for v in visits.values()]
    assert len([a for a in alerts if a]) == 1 and len(open_alerts) == 1
    assert any(held)
    for visit in visits.values():
        if visit.submitted_at:
            minutes = (visit.submitted_at - visit.started_at).total_seconds() / 60
            assert 4 <= minutes <= 9


def test_every_submitted_demo_visit_renders_for_the_psychiatrist(app, runner):
    assert runner.invoke(args=["demo"]).exit_code == 0
    doctor = app.test_client()
    assert log_in(doctor, "dr.rivera@example.org", demo.DEMO_PASSWORD).status_code == 302
    pages, rendered = {}, 0
    for visit in all_visits(app):  # in id order, so RB-1187 ends with today's visit
        if visit.status in ("submitted", "reviewed"):
            response = doctor.get(f"/staff/visits/{visit.id}/summary")
            assert response.status_code == 200, visit.patient_ref
            pages[visit.patient_ref] = response.get_data(as_text=True)
            rendered += 1
    assert rendered == 7
    assert 'role="alert"' in pages["A-2041"]  # the red safety banner
    assert "Ambivalence" in pages["A-2057"]
    follow_up = pages["RB-1187"]
    assert "4 out of 10 → 7 out of 10" in follow_up and "New worries" in follow_up
    assert "Mi madre dice" in pages["A-2079"]
    assert "Held for in person" in pages["A-2085"]
    assert "not asked: not taking medicine" in pages["A-2092"]  # M0 "no"


def test_demo_board_opens_for_the_front_desk(app, runner):
    assert runner.invoke(args=["demo"]).exit_code == 0
    desk = app.test_client()
    assert log_in(desk, "desk@example.org", demo.DEMO_PASSWORD).status_code == 302
    board = desk.get("/staff/").get_data(as_text=True)
    for ref in ("A-2041", "A-2057", "RB-1187", "A-2063", "KT-0412", "A-2079", "A-2085", "A-2092"):
        assert ref in board
    assert "part 3 of 8" in board


def test_demo_invitation_link_opens_the_patient_side(app, runner):
    result = runner.invoke(args=["demo"])
    link = next(line for line in result.output.splitlines() if "/v/" in line)
    token = link.rsplit("/v/", 1)[1].strip()
    page = app.test_client().get(f"/v/{token}", follow_redirects=True)
    assert page.status_code == 200 and "Before your visit" in page.get_data(as_text=True)


# --- links -------------------------------------------------------------------------------


def test_links_follow_the_configured_address_everywhere(app, runner):
    app.config["BASE_URL"] = "https://reflect.clinic.example/"
    printed = runner.invoke(args=["invite", "RB-1"]).output
    assert "Link:    https://reflect.clinic.example/v/" in printed
    with app.test_request_context(base_url="http://10.0.0.5:8000"):
        assert base_url() == "https://reflect.clinic.example"


def test_links_without_a_configured_address(app, runner):
    assert "Link:    http://127.0.0.1:8000/v/" in runner.invoke(args=["invite", "RB-1"]).output
    app.config.update(SERVE_HOST="192.0.2.7", SERVE_PORT=8123)  # as `serve --host --port` sets
    with app.app_context():
        assert base_url() == "http://192.0.2.7:8123"
    # A request's own Host is the client's to write: only a loopback one is taken from it.
    with app.test_request_context(base_url="http://10.0.0.5:8000/"):
        assert base_url() == "http://192.0.2.7:8123"
    with app.test_request_context(base_url="http://127.0.0.1:5000/"):
        assert base_url() == "http://127.0.0.1:5000"


@pytest.mark.parametrize("configured", [{}, {"BASE_URL": "https://reflect.clinic.example"}])
def test_a_forged_host_never_reaches_the_link_the_qr_code_or_the_slip(app, configured):
    app.config.update(configured)
    create_user(app, "desk@example.org", "frontdesk")
    client = app.test_client()
    forged = {"base_url": "http://evil.example"}
    page = client.get("/staff/login", **forged)
    client.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "email": "desk@example.org",
            "password": "correct horse battery",
        },
        **forged,
    )
    form = client.get("/staff/invitations/new", **forged).get_data(as_text=True)
    data = {"csrf_token": csrf_from(form), "patient_ref": "RB-7", "day": "2026-11-25"}
    data.update(time="14:30", psychiatrist="0", language="")
    html = client.post(
        "/staff/invitations/new", data=data, follow_redirects=True, **forged
    ).get_data(as_text=True)
    link = re.search(r'href="([^"]+/v/[^"]+)"', html).group(1)
    slip_url = re.search(r'href="(/staff/visits/\d+/slip)"', html).group(1)
    slip = client.get(slip_url, **forged).get_data(as_text=True)
    assert "evil.example" not in html and "evil.example" not in slip
    expected = configured.get("BASE_URL", "http://127.0.0.1:8000")
    assert link.startswith(expected + "/v/")
    qr_path = segno.make(link, error="m", micro=False).svg_inline(scale=5)
    qr_path = re.search(r' d="([^"]+)"', qr_path).group(1)
    assert re.search(r' d="([^"]+)"', html).group(1) == qr_path
    assert re.search(r' d="([^"]+)"', slip).group(1) == qr_path


def test_serve_for_other_machines_needs_a_base_url(app, runner, monkeypatch):
    import waitress

    served = {}
    monkeypatch.setattr(waitress, "serve", lambda app_, **kw: served.update(kw))
    refused = runner.invoke(args=["serve", "--host", "192.0.2.7"])
    assert refused.exit_code != 0 and "PATIENTAPP_BASE_URL" in refused.output
    app.config["TRUSTED_PROXY"] = "127.0.0.1"
    assert runner.invoke(args=["serve"]).exit_code != 0
    assert not served
    app.config["BASE_URL"] = "https://reflect.clinic.example"
    assert runner.invoke(args=["serve", "--host", "192.0.2.7"]).exit_code == 0
    assert served["host"] == "192.0.2.7"


def test_demo_refuses_a_database_that_has_a_clinics_own_staff_account(app, runner):
    """Found in the newcomer's order: `make run`, the first admin, then `make demo` added
    three demo accounts, one an admin, with the password the README publishes."""
    create_user(app, "boss@clinic.example", "admin", name="Real Admin")
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 1
    assert "has staff accounts of its own" in result.output
    assert "make demo" in result.output and "PATIENTAPP_INSTANCE" in result.output
    assert demo.DEMO_PASSWORD not in result.output
    with app.app_context():
        db = get_db()
        assert [u["email"] for u in storage.list_users(db)] == ["boss@clinic.example"]
        assert storage.count_visits(db) == 0


def test_demo_again_on_its_own_database_is_not_a_clinic_account(app, runner):
    assert runner.invoke(args=["demo"]).exit_code == 0
    again = runner.invoke(args=["demo", "--force"])
    assert again.exit_code == 0, again.output


def test_make_demo_keeps_an_instance_folder_of_its_own():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:]]
    assert lines and all("PATIENTAPP_INSTANCE=$(DEMO_INSTANCE)" in line for line in lines)
    assert "DEMO_INSTANCE ?= demo-instance" in makefile
    assert "/demo-instance/" in (ROOT / ".gitignore").read_text(encoding="utf-8")


def test_links_printed_at_the_terminal_use_the_configured_port(app, runner, monkeypatch):
    """`make demo PORT=8080` and `flask invite` printed links on port 8000."""
    from patientapp import config

    monkeypatch.setenv("PATIENTAPP_PORT", "8080")
    app.config.update(config.from_environment())
    result = runner.invoke(args=["invite", "PORT-1"])
    assert "http://127.0.0.1:8080/v/" in result.output, result.output
    assert "http://127.0.0.1:8080/start" in result.output

"""Configuration, storage pragmas, the CLI, and packaging."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from patientapp import config, create_app
from patientapp.db import storage

ROOT = Path(__file__).resolve().parents[2]


def test_secret_key_is_generated_once_with_private_permissions(tmp_path, monkeypatch):
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path))
    monkeypatch.delenv("PATIENTAPP_SECRET_KEY", raising=False)
    first = create_app({"DATABASE": str(tmp_path / "a.db")})
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    second = create_app({"DATABASE": str(tmp_path / "a.db")})
    assert first.secret_key == second.secret_key and len(first.secret_key) == 64


def test_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path))
    monkeypatch.setenv("PATIENTAPP_SECRET_KEY", "from-env")
    monkeypatch.setenv("PATIENTAPP_DATABASE", str(tmp_path / "elsewhere.db"))
    monkeypatch.setenv("PATIENTAPP_PATIENT_IDLE_MINUTES", "5")
    app = create_app()
    assert app.secret_key == "from-env"
    assert app.config["DATABASE"] == str(tmp_path / "elsewhere.db")
    assert app.config["PATIENT_IDLE_MINUTES"] == 5
    assert (tmp_path / "elsewhere.db").exists()
    assert not (tmp_path / "secret_key").exists()


def test_default_database_lives_under_instance(tmp_path, monkeypatch):
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.delenv("PATIENTAPP_DATABASE", raising=False)
    app = create_app()
    assert app.config["DATABASE"] == str(tmp_path / "instance" / "patientapp.db")


def test_every_connection_has_the_pragmas(db):
    assert next(db.query("PRAGMA journal_mode"))["journal_mode"] == "wal"
    assert next(db.query("PRAGMA synchronous"))["synchronous"] == 2  # FULL
    assert next(db.query("PRAGMA busy_timeout"))["timeout"] >= 5000
    assert next(db.query("PRAGMA foreign_keys"))["foreign_keys"] == 1


def test_migrations_are_recorded_and_idempotent(app, db):
    storage.initialise(app.config["DATABASE"])
    assert next(m.name for m in storage.migrations.applied(db)) == "m001_initial"
    assert storage.migrations.pending(db) == []


@pytest.mark.parametrize(
    ("host", "loud"),
    [
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
        ("0.0.0.0", True),  # noqa: S104
        ("192.168.1.5", True),
    ],
)
def test_debug_on_a_public_host_warns_loudly(capsys, host, loud):
    assert config.warn_if_unsafe(host, debug=True) is loud
    assert ("DEBUG MODE ON A NON-LOOPBACK HOST" in capsys.readouterr().out) is loud
    assert config.warn_if_unsafe(host, debug=False) is False


def test_cli_invite_prints_a_working_link_and_code(app, runner):
    result = runner.invoke(args=["invite", "RB-2231", "--at", "2026-11-25 15:30"])
    assert result.exit_code == 0, result.output
    link = next(line for line in result.output.splitlines() if line.startswith("Link:"))
    code = next(line for line in result.output.splitlines() if line.startswith("Code:"))
    token = link.split("/v/")[1].strip()
    assert "Expires: 2026-11-25 23:59" in result.output
    client = app.test_client()
    assert "Before your visit" in client.get(f"/v/{token}", follow_redirects=True).get_data(
        as_text=True
    )
    assert len(code.split()[1]) == 11  # XXXXX-XXXXX


def test_cli_invite_refuses_a_day_that_has_passed(app, runner):
    """A mistyped year would hand the patient a link that has already expired."""
    result = runner.invoke(args=["invite", "OLD-1", "--at", "2025-11-25 10:00"])
    assert result.exit_code == 2
    assert "2025-11-25 has passed, so its link would not open" in result.output
    assert "Link:" not in result.output
    # Earlier today is still today: its link works until the day ends.
    assert runner.invoke(args=["invite", "AM-1", "--at", "2026-11-25 07:00"]).exit_code == 0


def test_cli_invite_includes_the_measures_asked_for_or_the_settings_default(app, runner, db):
    result = runner.invoke(args=["invite", "RB-1", "--measure", "phq9", "--measure", "gad7"])
    assert result.exit_code == 0, result.output
    assert "Standard measures: GAD-7, PHQ-9" in result.output
    storage.save_settings(db, {"measures": ["phq9"]})
    result = runner.invoke(args=["invite", "RB-2"])
    assert "Standard measures: PHQ-9" in result.output
    result = runner.invoke(args=["invite", "RB-4", "--no-measures"])
    assert result.exit_code == 0 and "Standard measures" not in result.output
    assert runner.invoke(args=["invite", "RB-3", "--measure", "bdi"]).exit_code != 0


def test_cli_invite_rejects_bad_input(runner):
    assert runner.invoke(args=["invite", "A-1", "--at", "tomorrow"]).exit_code != 0
    assert runner.invoke(args=["invite", "x" * 41]).exit_code != 0


def test_wheel_contains_templates_translations_and_data(tmp_path):
    from hatchling.builders.wheel import WheelBuilder

    root = str(Path(__file__).resolve().parents[2])
    builder = WheelBuilder(root)
    wheel = next(builder.build(directory=str(tmp_path), versions=["standard"]))
    names = zipfile.ZipFile(wheel).namelist()
    assert "patientapp/templates/base.html" in names
    assert "patientapp/templates/patient/step.html" in names
    assert "patientapp/questionnaire/definition.toml" in names
    assert "patientapp/questionnaire/instruments/phq9.toml" in names
    assert "patientapp/questionnaire/instruments/gad7.toml" in names
    assert "patientapp/static/app.css" in names
    assert "patientapp/static/staff.css" in names
    assert any(n.startswith("patientapp/translations/") for n in names)


def test_serve_uses_waitress_and_prints_a_setup_link_without_users(app, runner, monkeypatch):
    import waitress

    served = {}
    monkeypatch.setattr(waitress, "serve", lambda app_, **kw: served.update(kw))
    result = runner.invoke(args=["serve", "--port", "8765"])
    assert result.exit_code == 0, result.output
    assert served["host"] == "127.0.0.1" and served["port"] == 8765
    link = next(line.strip() for line in result.output.splitlines() if "/staff/setup/" in line)
    path = link.split("8765", 1)[1]
    assert app.test_client().get(path).status_code == 200
    # The hint names a flask that runs here: a bare `flask` is not on PATH after `make run`.
    hint = next(line for line in result.output.splitlines() if line.startswith("Or run: "))
    command = hint.removeprefix("Or run: ").split(" --app ", 1)[0]
    assert command != "flask"
    program = command.split()[0]
    assert Path(program).exists() and os.access(program, os.X_OK), command
    # Once someone exists, no link is printed.
    from tests.conftest import create_user

    create_user(app, "a@example.org", "admin")
    assert "/staff/setup/" not in runner.invoke(args=["serve", "--port", "8765"]).output


def test_database_file_is_private(app):
    assert stat.S_IMODE(os.stat(app.config["DATABASE"]).st_mode) == 0o600


def test_static_files_are_cached_and_pages_are_not(client):
    html = client.get("/start").get_data(as_text=True)
    css = next(part.split('"')[0] for part in html.split('href="') if "app.css" in part)
    assert "?v=" in css
    response = client.get(css)
    assert "max-age=86400" in response.headers["Cache-Control"]
    response.close()
    assert client.get("/start").headers["Cache-Control"] == "no-store"


def test_every_module_imports_with_warnings_as_errors(tmp_path):
    """Nothing the package imports warns (deprecations of newer Pythons included)."""
    code = (
        "import importlib, pkgutil, patientapp\n"
        "for m in pkgutil.walk_packages(patientapp.__path__, 'patientapp.'):\n"
        "    importlib.import_module(m.name)\n"
        "import app\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATIENTAPP_INSTANCE": str(tmp_path / "instance")},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("create", ["secret", "database"])
def test_a_new_instance_folder_is_private(tmp_path, create):
    instance = tmp_path / "instance"
    if create == "secret":
        config.load_or_create_secret(instance)
    else:
        storage.initialise(instance / "patientapp.db")
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700

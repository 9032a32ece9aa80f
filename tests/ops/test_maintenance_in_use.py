"""encrypt-db and rekey-db rewrite the database file: while any server process has it
open (busy or idle) they refuse with one line naming what to stop, and change nothing.

Found by starting `flask serve`, loading pages, then running encrypt-db: it said "now
encrypted" while the server's idle connections kept the plain WAL, and the database was
corrupt after a restart; rekey-db had no check at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from patientapp.db import storage
from tests.ops.test_server import ROOT, get_status, serving

pytest.importorskip("sqlcipher3")  # wheels for Linux x86_64 only

KEY = "maintenance key"


def flask(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def integrity(path: Path, key: str | None) -> str:
    db = storage.connect(path, key=key)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def test_encrypt_and_rekey_refuse_while_a_server_runs_then_work_once_it_stops(tmp_path):
    path = tmp_path / "instance" / "patientapp.db"
    base = {"PATIENTAPP_INSTANCE": str(tmp_path / "instance"), "PATIENTAPP_WORKERS": "2"}
    keyed = {**base, "PATIENTAPP_DB_KEY": KEY}
    with serving(tmp_path, base) as port:
        for _ in range(3):  # the workers open the database and keep it open, idle
            assert get_status(port) == 200
        refused = flask(["encrypt-db"], keyed)
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.strip().count("\n") == 0  # one line
        assert "stop `flask serve`" in refused.stderr
        assert "encrypt-db again" in refused.stderr
        assert "now encrypted" not in refused.stdout
        assert storage.is_plain(path)
        assert get_status(port) == 200
    assert integrity(path, None) == "ok"
    done = flask(["encrypt-db"], keyed)
    assert done.returncode == 0, done.stderr
    assert integrity(path, KEY) == "ok"

    with serving(tmp_path, keyed) as port:
        assert get_status(port) == 200
        refused = flask(["rekey-db"], {**keyed, "PATIENTAPP_NEW_DB_KEY": "next key"})
        assert refused.returncode == 1
        assert "stop `flask serve`" in refused.stderr and "rekey-db again" in refused.stderr
        assert get_status(port) == 200  # still the old key: nothing changed under it
    assert integrity(path, KEY) == "ok"
    done = flask(["rekey-db"], {**keyed, "PATIENTAPP_NEW_DB_KEY": "next key"})
    assert done.returncode == 0, done.stderr
    assert integrity(path, "next key") == "ok"
    with serving(tmp_path, {**base, "PATIENTAPP_DB_KEY": "next key"}) as port:
        assert get_status(port) == 200


def test_a_server_does_not_start_while_a_maintenance_command_holds_the_database(tmp_path):
    path = tmp_path / "alone.db"
    storage.initialise(path)
    with storage.used_alone(path, "encrypt-db"):
        result = flask(
            ["backup", str(tmp_path / "copy.db")],
            {"PATIENTAPP_INSTANCE": str(tmp_path / "i"), "PATIENTAPP_DATABASE": str(path)},
        )
    assert result.returncode != 0
    assert "being changed by a maintenance command" in result.stderr

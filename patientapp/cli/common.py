"""What the commands share: who the audit log names, and how a command refuses."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import NoReturn

import click

from patientapp.db import storage
from patientapp.web.context import get_db, now

ACTOR = "cli"


def audit(action: str, visit_id: int | None = None, detail: str = "") -> None:
    """Record a change made at the terminal (inside the change's own ``storage.write``,
    so the change and its entry are saved together or not at all)."""
    audit_entry(get_db(), action, visit_id=visit_id, detail=detail)


def audit_entry(db, action: str, *, visit_id: int | None = None, detail: str = "") -> None:
    """The same entry on a given connection (a file being converted)."""
    storage.audit(db, action, now=now(), actor=ACTOR, visit_id=visit_id, detail=detail)


def fail(message: str) -> NoReturn:
    """Print to stderr and exit 1: scripts can tell a refusal from success."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def flask_command() -> str:
    """How to run `flask` as this command was run: the virtual environment's own
    (.venv/bin/flask), which a bare `flask` on PATH is not."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "flask" and script.exists():
        return shlex.quote(_relative(script))
    return f"{shlex.quote(_relative(Path(sys.executable)))} -m flask"


def _relative(path: Path) -> str:
    """The path as typed from the current folder when it is inside it."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)

"""flask backup: a consistent copy of the live database, safe while the app runs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from patientapp.cli.common import audit, fail
from patientapp.db import storage
from patientapp.web.context import get_db


def _same_file(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _backup_to(target: Path) -> int:
    """Copy into a temporary file beside the target, then rename it into place in the
    transaction that records it, so the target is never a half-written copy, --force can
    replace any old file, and no copy of the answers exists without its audit entry."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    placed = False
    try:
        storage.backup(get_db(), temp_name, current_app.config.get("DATABASE_KEY"))
        os.chmod(temp_name, 0o600)  # the copy holds answers: readable by the owner only
        size = Path(temp_name).stat().st_size
        with storage.write(get_db()):
            audit("backup", detail=f"{target} ({size} bytes)")
            os.replace(temp_name, target)
            placed = True
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        if placed:  # renamed, but its entry was not saved: no copy without one
            target.unlink(missing_ok=True)
        raise
    return size


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it already exists.")
@with_appcontext
def backup_command(path: Path, force: bool) -> None:
    """Write a consistent copy of the live database to PATH (safe while the app runs)."""
    target = path.expanduser().resolve()
    if not target.parent.is_dir():
        fail(f"the folder {target.parent} does not exist")
    if _same_file(target, Path(current_app.config["DATABASE"])):
        fail("PATH is the live database itself; choose another file")
    if target.exists() and not force:
        fail(f"{target} already exists; add --force to replace it")
    size = _backup_to(target)
    click.echo(f"Backup written to {target} ({size:,} bytes).")

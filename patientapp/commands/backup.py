"""flask backup: a consistent copy of the live database, safe while the app runs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import storage
from ..web import get_db
from .common import audit, fail


def _same_file(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _backup_to(target: Path) -> None:
    """Copy into a temporary file beside the target, then rename it into place, so the
    target is never a half-written copy and --force can replace any old file."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        storage.backup(get_db(), temp_name, current_app.config.get("DATABASE_KEY"))
        os.chmod(temp_name, 0o600)  # the copy holds answers: readable by the owner only
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


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
    _backup_to(target)
    size = target.stat().st_size
    audit("backup", detail=f"{target} ({size} bytes)")
    click.echo(f"Backup written to {target} ({size:,} bytes).")

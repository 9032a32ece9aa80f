"""flask purge: delete visits older than the retention period set under Settings."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import click
from flask.cli import with_appcontext

from .. import storage
from ..web import clinic_settings, get_db, now
from .common import audit


def retention_cutoff() -> datetime:
    """Midnight starting the oldest day still kept: a visit stays retention_days full days."""
    days = int(clinic_settings()["retention_days"])
    return datetime.combine(now().date() - timedelta(days=days), time.min)


def _describe(counts: dict) -> str:
    return (
        f"{counts['visits']} visits ({counts['answers']} answers, {counts['alerts']} safety alerts)"
    )


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@with_appcontext
def purge_command(dry_run: bool) -> None:
    """Delete visits whose appointment is older than the retention period in Settings.
    Their answers and alerts go with them; the audit log is kept."""
    cutoff = retention_cutoff()
    day = f"{cutoff:%Y-%m-%d}"
    if dry_run:
        counts = storage.purge_counts(get_db(), cutoff)
        click.echo(f"Dry run: would remove {_describe(counts)} with appointments before {day}.")
        return
    counts = storage.purge_before(get_db(), cutoff)
    storage.checkpoint(get_db())
    audit(
        "purge",
        detail=f"visits={counts['visits']} answers={counts['answers']} "
        f"alerts={counts['alerts']} before={day}",
    )
    click.echo(f"Removed {_describe(counts)} with appointments before {day}.")

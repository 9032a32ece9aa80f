"""flask purge: delete visits older than the retention period set under Settings."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from patientapp.cli.common import ACTOR
from patientapp.db import storage
from patientapp.domain import retention
from patientapp.web.context import clinic_settings, get_db, now


def _n(count: int, noun: str) -> str:
    """Counts read "1 visit", "2 visits": the commands speak English only."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _describe(counts: dict) -> str:
    return (
        f"{_n(counts['visits'], 'visit')} ({_n(counts['answers'], 'answer')}, "
        f"{_n(counts['alerts'], 'safety alert')})"
    )


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@with_appcontext
def purge_command(dry_run: bool) -> None:
    """Delete visits whose appointment is older than the retention period in Settings.
    Their answers and alerts go with them; the audit log is kept."""
    if dry_run:
        cutoff = retention.cutoff(int(clinic_settings()["retention_days"]), now())
        counts = storage.purge_counts(get_db(), cutoff)
        click.echo(
            f"Dry run: would remove {_describe(counts)} with appointments before {cutoff:%Y-%m-%d}."
        )
        return
    result = retention.run(get_db(), now(), actor=ACTOR)
    click.echo(f"Removed {_describe(result)} with appointments before {result['before']:%Y-%m-%d}.")

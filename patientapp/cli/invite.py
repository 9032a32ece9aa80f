"""flask invite: an invitation made at the terminal, printed as a link and a code."""

from __future__ import annotations

from datetime import datetime

import click
from flask.cli import with_appcontext

from patientapp.cli.common import audit
from patientapp.db import storage
from patientapp.domain import invitations, visits
from patientapp.web.context import base_url, clinic_settings, get_db, measure_choices, now


def _parse_when(value: str | None) -> datetime:
    if not value:
        return now().replace(second=0)
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("use YYYY-MM-DD HH:MM, e.g. 2026-11-25 14:30") from exc
    if when.date() < now().date():  # its link would have expired already: a mistyped year?
        raise click.BadParameter(
            f"{when:%Y-%m-%d} has passed, so its link would not open; check the date"
        )
    return when


@click.command("invite")
@click.argument("patient_ref")
@click.option(
    "--at", "appointment", help="Appointment date and time, YYYY-MM-DD HH:MM (default: now)."
)
@click.option("--language", default="", help="Suggested language code, e.g. es or ar.")
@click.option(
    "--measure",
    "measures",
    multiple=True,
    type=click.Choice([m for m, _name in measure_choices()]),
    help="A standard measure to include (repeat for more); default: the Settings default.",
)
@click.option("--no-measures", is_flag=True, help="Include no standard measure.")
@with_appcontext
def invite_command(
    patient_ref: str,
    appointment: str | None,
    language: str,
    measures: tuple[str, ...],
    no_measures: bool,
) -> None:
    """Create an invitation for PATIENT_REF (a chart number or initials, not a name)
    and print its link and short code."""
    patient_ref = patient_ref.strip()
    if not patient_ref or len(patient_ref) > 40:
        raise click.BadParameter("give a chart number or initials of 1 to 40 characters")
    db, when = get_db(), _parse_when(appointment)
    with storage.write(db):  # the invitation and its audit entry together
        invitation = visits.create(
            db,
            patient_ref=patient_ref,
            appointment_at=when,
            psychiatrist_id=None,
            suggested_language=language,
            extra_days=int(clinic_settings()["invite_extra_days"]),
            created_by=None,
            now=now(),
            measures=() if no_measures else measures or tuple(clinic_settings()["measures"] or ()),
        )
        audit("invitation_created", invitation.visit_id)
    click.echo(f"Link:    {base_url()}/v/{invitation.token}")
    click.echo(
        f"Code:    {invitations.format_code(invitation.code)}  (enter at {base_url()}/start)"
    )
    click.echo(f"Expires: {invitation.expires_at:%Y-%m-%d %H:%M}")
    included = [
        name
        for m, name in measure_choices()
        if m in storage.get_visit(db, invitation.visit_id).chosen
    ]
    if included:
        click.echo(f"Standard measures: {', '.join(included)}")

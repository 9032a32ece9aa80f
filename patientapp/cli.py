"""Command-line tools: serve, invite, and the operations commands."""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from . import config as config_module
from . import i18n_tools, invitations, visits
from .web import clinic_settings, get_db, now


def base_url() -> str:
    configured = current_app.config.get("BASE_URL")
    if configured:
        return configured.rstrip("/")
    host = current_app.config.get("SERVE_HOST", "127.0.0.1")
    port = current_app.config.get("SERVE_PORT", 8000)
    return f"http://{host}:{port}"


@click.command("serve")
@click.option(
    "--host",
    envvar="PATIENTAPP_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.",
)
@click.option(
    "--port",
    envvar="PATIENTAPP_PORT",
    default=8000,
    show_default=True,
    type=int,
    help="Port to listen on.",
)
@click.option(
    "--threads",
    envvar="PATIENTAPP_THREADS",
    default=8,
    show_default=True,
    type=int,
    help="Worker threads.",
)
@with_appcontext
def serve_command(host: str, port: int, threads: int) -> None:
    """Serve the app with waitress, the production server."""
    import waitress

    app = current_app._get_current_object()
    config_module.warn_if_unsafe(host, app.debug)
    app.config.setdefault("SERVE_HOST", host)
    app.config.setdefault("SERVE_PORT", port)
    click.echo(f"Serving on http://{host}:{port}  (database: {app.config['DATABASE']})")
    _announce_setup_link()
    waitress.serve(app, host=host, port=port, threads=threads, ident="patientapp")


def _announce_setup_link() -> None:
    """With no staff account yet, print a one-time link to create the first admin."""
    from .auth import issue_setup_token

    token = issue_setup_token(get_db())
    if token:
        click.echo("No staff account exists yet. Create the first admin here (works once):")
        click.echo(f"  {base_url()}/staff/setup/{token}")
        click.echo("Or run: flask --app app create-user --role admin EMAIL")


def _parse_when(value: str | None) -> datetime:
    if not value:
        return now().replace(second=0)
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("use YYYY-MM-DD HH:MM, e.g. 2026-11-25 14:30") from exc


@click.command("invite")
@click.argument("patient_ref")
@click.option(
    "--at", "appointment", help="Appointment date and time, YYYY-MM-DD HH:MM (default: now)."
)
@click.option("--language", default="", help="Suggested language code, e.g. es or ar.")
@with_appcontext
def invite_command(patient_ref: str, appointment: str | None, language: str) -> None:
    """Create an invitation for PATIENT_REF (a chart number or initials, not a name)
    and print its link and short code."""
    patient_ref = patient_ref.strip()
    if not patient_ref or len(patient_ref) > 40:
        raise click.BadParameter("give a chart number or initials of 1 to 40 characters")
    invitation = visits.create(
        get_db(),
        patient_ref=patient_ref,
        appointment_at=_parse_when(appointment),
        psychiatrist_id=None,
        suggested_language=language,
        extra_days=int(clinic_settings()["invite_extra_days"]),
        created_by=None,
        now=now(),
    )
    click.echo(f"Link:    {base_url()}/v/{invitation.token}")
    click.echo(
        f"Code:    {invitations.format_code(invitation.code)}  (enter at {base_url()}/start)"
    )
    click.echo(f"Expires: {invitation.expires_at:%Y-%m-%d %H:%M}")


def init_app(app) -> None:
    for command in (serve_command, invite_command):
        app.cli.add_command(command)
    i18n_tools.init_app(app)
    from . import ops  # imported here: ops uses base_url from this module

    ops.init_app(app)

"""flask serve: the production server (waitress)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import config as config_module
from .. import retention
from ..auth import issue_setup_token
from ..web import base_url, get_db


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
    import waitress  # only this command needs the server: every other command starts faster

    app = current_app._get_current_object()
    config_module.warn_if_unsafe(host, app.debug)
    problem = config_module.base_url_problem(app.config, host)
    if problem:
        raise click.ClickException(problem)
    app.config.setdefault("SERVE_HOST", host)
    app.config.setdefault("SERVE_PORT", port)
    click.echo(f"Serving on http://{host}:{port}  (database: {app.config['DATABASE']})")
    _announce_setup_link()
    retention.start(app)
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="patientapp",
        **config_module.server_options(app.config),
    )


def _announce_setup_link() -> None:
    """With no staff account yet, print a one-time link to create the first admin."""
    token = issue_setup_token(get_db())
    if token:
        click.echo("No staff account exists yet. Create the first admin here (works once):")
        click.echo(f"  {base_url()}/staff/setup/{token}")
        click.echo("Or run: flask --app app create-user --role admin EMAIL")

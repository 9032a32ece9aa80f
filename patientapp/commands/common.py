"""What the commands share: who the audit log names, and how a command refuses."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from .. import storage
from ..web import get_db, now

ACTOR = "cli"


def audit(action: str, detail: str = "") -> None:
    """Record a change made at the terminal."""
    storage.audit(get_db(), action, now=now(), actor=ACTOR, detail=detail)


def fail(message: str) -> NoReturn:
    """Print to stderr and exit 1: scripts can tell a refusal from success."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)

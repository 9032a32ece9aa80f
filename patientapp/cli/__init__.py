"""The `flask` commands: serve, invite, create-user, backup, verify-backup, purge, demo,
encrypt-db, rekey-db, and the i18n group.

Commands that change data audit it with actor "cli", since no one is signed in at a
terminal; a refusal prints "Error: ..." to standard error and exits 1.
"""

from __future__ import annotations

from patientapp.cli import accounts, backup, demo, encryption, invite, purge, serve
from patientapp.cli import i18n as i18n_tools

COMMANDS = (
    serve.serve_command,
    invite.invite_command,
    accounts.create_user_command,
    backup.backup_command,
    backup.verify_backup_command,
    backup.restore_backup_command,
    purge.purge_command,
    demo.demo_command,
    encryption.encrypt_db_command,
    encryption.rekey_db_command,
)


def init_app(app) -> None:
    """Register every command on the app's CLI."""
    for command in COMMANDS:
        app.cli.add_command(command)
    i18n_tools.init_app(app)

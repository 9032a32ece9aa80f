"""What the audit log's actions and actors are called on the admin's Audit log page.

An entry keeps its action as a stable code (``summary_viewed``): it is what a filter,
an export or a log collector matches, and it never changes. The page shows each code
by its translated name, the code beside it. Every action the app writes is named here:
writing one that is not warns with :class:`UnknownAuditAction` (an error in the test
suite, see pyproject.toml), so a new action cannot reach the page as a bare code.
A code no longer written (from an older version's entries) still shows, as its code.
"""

from __future__ import annotations

import warnings

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

ACTIONS = {
    # Signing in and out
    "login": _l("Signed in"),
    "login_failed": _l("Sign-in refused"),
    "logout": _l("Signed out"),
    "mfa_enrolled": _l("Second factor set up"),
    "mfa_failed": _l("Second-factor code refused"),
    "mfa_reset": _l("Second factor reset by an admin"),
    "recovery_code_used": _l("Recovery code used"),
    "password_changed": _l("Password changed"),
    "tablet_mode_entered": _l("Waiting-room tablet started"),
    "tablet_mode_left": _l("Waiting-room tablet ended"),
    "provider_link_created": _l("Link to the sign-in service made"),
    "provider_linked": _l("Linked to the sign-in service"),
    "provider_unlinked": _l("Unlinked from the sign-in service"),
    "provider_login_failed": _l("Sign-in through the sign-in service refused"),
    "smart_launch": _l("Opened from the EHR"),
    "smart_launch_failed": _l("Opening from the EHR refused"),
    # Accounts and settings
    "user_created": _l("Account created"),
    "user_updated": _l("Account changed"),
    "user_deactivated": _l("Account turned off"),
    "user_reactivated": _l("Account turned back on"),
    "settings_changed": _l("Settings changed"),
    "mail_settings_changed": _l("Outgoing mail settings changed"),
    "message_settings_changed": _l("Invitation message settings changed"),
    "mail_test_sent": _l("Test e-mail sent"),
    "mail_test_failed": _l("Test e-mail failed"),
    "api_token_created": _l("API token created"),
    "api_token_revoked": _l("API token revoked"),
    "api_token_rotated": _l("API token replaced"),
    "audit_log_viewed": _l("Audit log read"),
    "access_refused": _l("Access refused"),
    # Invitations and messages
    "invitation_created": _l("Invitation created"),
    "invitation_cancelled": _l("Invitation cancelled"),
    "invitation_reissued": _l("New link and code made"),
    "invitation_messages_queued": _l("Invitation messages queued"),
    "patient_entry_reissued": _l("New link or code opened"),
    "message_sent": _l("Message sent"),
    "message_failed": _l("Message not sent"),
    "messages_opted_out": _l("Patient stopped messages"),
    "contact_erased": _l("Patient's contact erased"),
    # Reading answers
    "summary_viewed": _l("Summary read"),
    "summary_printed": _l("Summary printed"),
    "summary_exported": _l("Summary exported"),
    "earlier_visit_shown": _l("Shown on a later visit's summary"),
    "visit_reviewed": _l("Visit marked reviewed"),
    "csv_exported": _l("CSV export"),
    "safety_report_viewed": _l("Safety report read"),
    "safety_report_printed": _l("Safety report printed"),
    "safety_report_exported": _l("Safety report exported"),
    # Safety alerts
    "alert_acknowledged": _l("Safety alert acknowledged"),
    "alert_reopened": _l("Safety alert opened again by a worse answer"),
    "alert_escalated": _l("Safety alert escalated"),
    "escalation_mail_sent": _l("Escalation e-mail sent"),
    "escalation_mail_failed": _l("Escalation e-mail not sent"),
    # The FHIR API
    "fhir_response_read": _l("FHIR: answers read"),
    "fhir_observation_read": _l("FHIR: observations read"),
    "fhir_flag_read": _l("FHIR: safety alert read"),
    "fhir_document_read": _l("FHIR: summary document read"),
    "fhir_questionnaire_read": _l("FHIR: questionnaire read"),
    "fhir_codesystem_read": _l("FHIR: code system read"),
    "fhir_structure_read": _l("FHIR: profile read"),
    # Operations
    "backup": _l("Backup made"),
    "backup_failed": _l("Backup failed"),
    "backup_verified": _l("Backup checked"),
    "backup_verify_failed": _l("Backup check failed"),
    "backup_restored": _l("Backup restored"),
    "purge": _l("Old visits deleted"),
    "encrypt-db": _l("Database encrypted"),
    "rekey-db": _l("Database key changed"),
    "demo_data": _l("Demo visits added"),
}

# Who an entry names when no staff member did it: a part of the app, the patient, or an
# API token ("api:" and the token's name).
ACTORS = {
    "patient": _l("The patient"),
    "cli": _l("A command on the server"),
    "delivery": _l("Message delivery"),
    "escalation": _l("Alert escalation"),
    "copies": _l("Continuous copies"),
    "retention": _l("Keeping and deleting old visits"),
}
API_ACTOR = "api:"


class UnknownAuditAction(UserWarning):
    """An audit entry written with an action that has no name in ACTIONS."""


def check(action: str) -> None:
    """Warn when an action about to be written has no name for the page."""
    if action not in ACTIONS:
        warnings.warn(
            f"audit action {action!r} has no name in audit_actions.ACTIONS",
            UnknownAuditAction,
            stacklevel=3,
        )


def action_name(action: str) -> str:
    """The action's name in the reader's language, or its code when it has none."""
    name = ACTIONS.get(action)
    return str(name) if name is not None else action


def actor_name(actor: str) -> str:
    """Who did it, for an entry without a staff account: named, or as written."""
    if actor.startswith(API_ACTOR):
        return gettext("API token %(name)s", name=actor.removeprefix(API_ACTOR))
    name = ACTORS.get(actor)
    return str(name) if name is not None else actor

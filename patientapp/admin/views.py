"""Admin pages: staff accounts, clinic settings and the audit log. Admins only.

Every change made here is audited with who, what and when; passwords and answer
content never reach the audit log.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_datetime, format_decimal, gettext, ngettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectChoice

from patientapp.admin import messages as messages_form
from patientapp.admin.forms import (
    WEEKDAYS,
    AuditFilterForm,
    ExportForm,
    MailForm,
    NewUserForm,
    PasswordForm,
    RoleForm,
    SettingsForm,
    TokenForm,
    crisis_field_name,
    settings_form_class,
    staffed_field_names,
    weekday_names,
)
from patientapp.admin.messages import MessagingForm
from patientapp.auth import provider
from patientapp.auth.sessions import audit, login_required
from patientapp.db import storage
from patientapp.domain import (
    api_tokens,
    audit_actions,
    backups,
    copies,
    delivery,
    escalation,
    mail,
    retention,
    staffed_hours,
)
from patientapp.domain.accounts import ROLE_LABELS, AccountError, checked_account, insert_account
from patientapp.domain.passwords import hash_password, hash_secret
from patientapp.exports import csv as exports
from patientapp.exports import fhir
from patientapp.i18n import LANGUAGES, language_name
from patientapp.questionnaire import model as questionnaire
from patientapp.web import errors
from patientapp.web.context import (
    SETTING_DEFAULTS,
    base_url,
    clinic_name,
    clinic_settings,
    clinic_zone,
    crisis_texts,
    get_db,
    measure_choices,
    now,
)

bp = Blueprint("admin", __name__, url_prefix="/staff/admin")
errors.STAFF.register(bp)

PAGE_SIZE = 100
MAX_PAGE = 100_000  # far beyond any real log; keeps OFFSET inside SQLite's integer range
# --- users -------------------------------------------------------------------------------


def _user_or_404(user_id: int) -> dict:
    user = storage.get_user(get_db(), user_id)
    if user is None:
        abort(404)
    return user


def _create_user(form: NewUserForm) -> bool:
    """Create the account, or put the reason it was refused on the form."""
    db = get_db()
    try:
        account = checked_account(  # the slow checks and hashing, before the write lock
            db,
            email=form.email.data,
            password=form.password.data,
            role=form.role.data,
            display_name=form.display_name.data,
        )
        with storage.write(db):  # the account and its audit entry together
            insert_account(db, account, now())
            audit("user_created", detail=f"{form.email.data} as {form.role.data}")
    except AccountError as error:
        form[error.field].errors.append(str(error))
        return False
    return True


@bp.route("/users", methods=["GET", "POST"])
@login_required("admin")
def users():
    """Every account, and a form to add one."""
    form = NewUserForm()
    if form.validate_on_submit() and _create_user(form):
        flash(gettext("Account created for %(email)s.", email=form.email.data), "ok")
        return redirect(url_for("admin.users"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "admin/users.html", form=form, users=storage.list_users(get_db()), role_labels=ROLE_LABELS
    ), status


def _user_page(
    account: dict, role_form=None, password_form=None, status: int = 200, new_link: str = ""
):
    role_form = role_form or RoleForm(formdata=None, data={"role": account["role"]})
    found = provider.settings()
    db = get_db()
    return render_template(
        "admin/user.html",
        user=account,
        role_form=role_form,
        password_form=password_form or PasswordForm(formdata=None),
        role_labels=ROLE_LABELS,
        is_self=account["id"] == g.user["id"],
        provider_name=found.name if found else "",
        identities=[
            {**row, "how": LINKED_HOW.get(row["linked_how"], row["linked_how"])}
            for row in storage.user_identities(db, account["id"])
            if found and row["issuer"] == found.issuer
        ],
        open_link=storage.open_identity_link(db, account["id"], now()),
        new_link=new_link,
        link_days=provider.LINK_DAYS,
    ), status


# How an identity came to be bound, as the user page says it.
LINKED_HOW = {
    "admin's link": _l("with an admin's link"),
    "verified e-mail": _l("by verified e-mail"),
}


@bp.post("/users/<int:user_id>/provider-link")
@login_required("admin")
def provider_link(user_id: int):
    """A one-time link that binds the person's identity at the clinic's sign-in service
    to this account (shown once; only its hash is kept; a new one replaces an unused one)."""
    account = _user_or_404(user_id)
    if provider.settings() is None or not account["active"]:
        abort(404)
    if not FlaskForm().validate_on_submit():
        abort(400)
    token = secrets.token_urlsafe(32)
    with storage.write(get_db()) as db:
        storage.add_identity_link(
            db,
            hash_secret(token),
            user_id,
            g.user["id"],
            now(),
            now() + timedelta(days=provider.LINK_DAYS),
        )
        audit("provider_link_created", detail=account["email"])
    link = base_url() + url_for("auth.provider_link", token=token)
    return _user_page(account, new_link=link)


@bp.post("/users/<int:user_id>/provider-unlink")
@login_required("admin")
def provider_unlink(user_id: int):
    """Unbind the account from its sign-in service identity; its sessions end."""
    account = _user_or_404(user_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    with storage.write(get_db()) as db:
        if storage.unlink_identities(db, user_id):
            if account["id"] != g.user["id"]:
                storage.end_user_sessions(db, user_id, now())
            audit("provider_unlinked", detail=account["email"])
    flash(gettext("Unlinked from the clinic's sign-in service."), "ok")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.get("/users/<int:user_id>")
@login_required("admin")
def user(user_id: int):
    """One account: change its role, set a new password, deactivate or reactivate it."""
    return _user_page(_user_or_404(user_id))


@bp.post("/users/<int:user_id>/role")
@login_required("admin")
def change_role(user_id: int):
    """Give an account another role; an admin can't demote themselves (no lockout)."""
    account = _user_or_404(user_id)
    form = RoleForm()
    if form.validate_on_submit():
        if account["id"] != g.user["id"]:
            _save_role(account, form.role.data)
            flash(gettext("Role saved."), "ok")
            return redirect(url_for("admin.user", user_id=user_id))
        form.role.errors.append(_l("You can't change your own role. Ask another admin."))
    return _user_page(account, role_form=form, status=422)


def _save_role(account: dict, role: str) -> None:
    if role != account["role"]:
        with storage.write(get_db()) as db:
            storage.update_user(db, account["id"], role=role)
            audit("user_updated", detail=f"{account['email']}: role {account['role']} -> {role}")


@bp.post("/users/<int:user_id>/password")
@login_required("admin")
def set_password(user_id: int):
    """Set a new password; the person's other sessions end, as after a reset."""
    account = _user_or_404(user_id)
    form = PasswordForm()
    form.account = account
    if not form.validate_on_submit():
        return _user_page(account, password_form=form, status=422)
    password_hash = hash_password(form.password.data)  # slow: before the write lock
    with storage.write(get_db()) as db:
        storage.update_user(db, user_id, password_hash=password_hash)
        if account["id"] != g.user["id"]:
            storage.end_user_sessions(db, user_id, now())  # and their trusted browsers
        else:
            storage.forget_trusted_devices(db, user_id)
        audit("user_updated", detail=f"{account['email']}: password set")
    flash(gettext("New password saved."), "ok")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/mfa/reset")
@login_required("admin")
def reset_mfa(user_id: int):
    """Forget a person's second factor (a lost phone): their sessions end, and they set
    it up again at their next sign-in."""
    account = _user_or_404(user_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    with storage.write(get_db()) as db:
        storage.reset_mfa(db, user_id)
        if account["id"] != g.user["id"]:
            storage.end_user_sessions(db, user_id, now())
        audit("mfa_reset", detail=account["email"])
    flash(gettext("Second factor reset. They set it up again at their next sign-in."), "ok")
    return redirect(url_for("admin.user", user_id=user_id))


def _set_active(user_id: int, active: bool):
    account = _user_or_404(user_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    if not active and account["id"] == g.user["id"]:
        flash(gettext("You can't deactivate your own account. Ask another admin."), "error")
    elif bool(account["active"]) != active:
        with storage.write(get_db()) as db:
            storage.update_user(db, user_id, active=int(active))
            if not active:
                storage.end_user_sessions(db, user_id, now())
            audit("user_reactivated" if active else "user_deactivated", detail=account["email"])
        flash(
            gettext("Account reactivated.")
            if active
            else gettext("Account deactivated. Their sessions have ended."),
            "ok",
        )
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/deactivate")
@login_required("admin")
def deactivate(user_id: int):
    """Stop an account from signing in and end its live sessions at once."""
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/reactivate")
@login_required("admin")
def reactivate(user_id: int):
    """Let a deactivated account sign in again."""
    return _set_active(user_id, True)


# --- settings ----------------------------------------------------------------------------


def _offered() -> list[str]:
    return list(current_app.config["OFFERED_LANGUAGES"])


FORM_SETTINGS = tuple(
    k
    for k in SETTING_DEFAULTS
    if k not in ("crisis_text", "crisis_texts", staffed_hours.SETTING)  # fields of their own
    and k not in mail.MAIL_SETTINGS  # own page
    and k not in messages_form.MESSAGE_SETTINGS  # own page
)


def _current_values() -> dict:
    """The settings as the form shows them; no stored languages means all offered."""
    values = {key: clinic_settings()[key] for key in FORM_SETTINGS}
    chosen = [code for code in values["languages"] or () if code in _offered()]
    values["languages"] = chosen or _offered()
    values["measures"] = [m for m, _ in measure_choices() if m in (values["measures"] or ())]
    values["crisis_texts"] = crisis_texts()
    values[staffed_hours.SETTING] = staffed_hours.to_setting(
        staffed_hours.schedule_from(clinic_settings())
    )
    return values


def _typed_schedule(form: SettingsForm) -> staffed_hours.Schedule:
    """The weekdays' "from" and "until" boxes as a schedule (the form checked the pairs)."""
    days = []
    for day in WEEKDAYS:
        start, end = (form[name].data for name in staffed_field_names(day))
        both = start is not None and end is not None
        days.append((start.replace(second=0), end.replace(second=0)) if both else None)
    return staffed_hours.Schedule(tuple(days))


def _typed_values(form: SettingsForm) -> dict:
    offered = _offered()
    values = {key: form[key].data for key in FORM_SETTINGS}
    values["languages"] = [code for code in offered if code in form.languages.data]
    values["measures"] = [m for m, _ in measure_choices() if m in (form.measures.data or ())]
    # Texts for languages no longer offered stay, ready if the language comes back.
    texts = {code: text for code, text in crisis_texts().items() if code not in offered}
    for code in offered:
        if form[crisis_field_name(code)].data:
            texts[code] = form[crisis_field_name(code)].data
    values["crisis_texts"] = texts
    values[staffed_hours.SETTING] = staffed_hours.to_setting(_typed_schedule(form))
    return values


def _form_data(values: dict) -> dict:
    data = {key: values[key] for key in FORM_SETTINGS}
    for code, text in values["crisis_texts"].items():
        data[crisis_field_name(code)] = text
    schedule = staffed_hours.schedule_from(values)
    for day, span in zip(WEEKDAYS, schedule.days, strict=True):
        for name, value in zip(staffed_field_names(day), span or (None, None), strict=True):
            data[name] = value
    return data


def _settings_form() -> SettingsForm:
    form_class = settings_form_class(
        tuple((code, language_name(code), LANGUAGES[code].tag) for code in _offered())
    )
    form = (
        form_class() if request.method == "POST" else form_class(data=_form_data(_current_values()))
    )
    form.languages.choices = [SelectChoice(code, language_name(code)) for code in _offered()]
    form.measures.choices = measure_choices()
    return form


def _using_default_text() -> list[str]:
    """Names of the languages patients are offered that show the general crisis message."""
    chosen = _current_values()["languages"]
    own = crisis_texts()
    return [language_name(code) for code in chosen if not own.get(code)]


@bp.route("/settings", methods=["GET", "POST"])
@login_required("admin")
def settings():
    """Clinic name, crisis text, languages, invitation lifetime, idle time, retention,
    staffed hours."""
    form = _settings_form()
    if form.validate_on_submit():
        current = _current_values()
        changed = {k: v for k, v in _typed_values(form).items() if current[k] != v}
        if changed:
            # Only changed keys are written, so an untouched idle time keeps following
            # the PATIENTAPP_PATIENT_IDLE_MINUTES default.
            with storage.write(get_db()) as db:  # the settings and their entry together
                storage.save_settings(db, changed)
                if set(changed) & set(fhir.SETTINGS_READ):  # every FHIR response changes
                    storage.bump_all_changes(db, now())
                audit("settings_changed", detail=", ".join(sorted(changed)))
            g.pop("clinic_settings", None)
        flash(gettext("Settings saved.") if changed else gettext("Nothing was changed."), "ok")
        return redirect(url_for("admin.settings"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "admin/settings.html",
        form=form,
        crisis_fields=[form[crisis_field_name(code)] for code in _offered()],
        staffed_days=[
            (name, *(form[field] for field in staffed_field_names(day)))
            for day, name in zip(WEEKDAYS, weekday_names(), strict=True)
        ],
        using_default=_using_default_text(),
        provider=provider.settings(),
        last_retention=_last_retention(),
        backup_lines=_backup_lines(),
        copy_lines=_copy_lines(),
    ), status


def _last_retention() -> str | None:
    """When the server (or `flask purge`) last removed old visits, and how many."""
    last = retention.last_run(get_db())
    if last is None:
        return None
    return ngettext(
        "Old visits last removed: %(when)s, %(num)s visit",
        "Old visits last removed: %(when)s, %(num)s visits",
        last["visits"],
        when=format_datetime(retention.last_run_at(last), "short"),
    )


def _backup_lines() -> list[tuple[str, bool]]:
    """The last successful copy and the last verified restore, each line with whether it
    is a warning: either older than the Settings limit, or never made."""
    days = int(clinic_settings()["backup_overdue_days"])
    state = backups.status(clinic_settings(), now(), days)
    lines: list[tuple[str, bool]] = []
    if state.backup_at is None:
        lines.append((gettext("No backup has been made yet."), True))
    else:
        size = format_decimal(state.backup_bytes / 1_000_000, format="#,##0.0")
        lines.append(
            (
                gettext(
                    "Last successful backup: %(when)s, %(size)s MB",
                    when=format_datetime(state.backup_at, "short"),
                    size=size,
                ),
                False,
            )
        )
        if state.backup_overdue:
            lines.append(
                (
                    ngettext(
                        "Backup overdue: the last one is more than %(num)s day old.",
                        "Backup overdue: the last one is more than %(num)s days old.",
                        days,
                    ),
                    True,
                )
            )
    if state.verified_at is None:
        lines.append((gettext("No restore has been verified yet."), True))
    else:
        written = state.copy_written_at or state.verified_at
        lines.append(
            (
                gettext(
                    "Last verified restore: %(when)s, of a copy written %(written)s",
                    when=format_datetime(state.verified_at, "short"),
                    written=format_datetime(written, "short"),
                ),
                False,
            )
        )
        if state.restore_overdue:
            lines.append(
                (
                    ngettext(
                        "Restore check overdue: the last one is more than %(num)s day old.",
                        "Restore check overdue: the last one is more than %(num)s days old.",
                        days,
                    ),
                    True,
                )
            )
    if state.last_check_failed_at is not None:
        when = format_datetime(state.last_check_failed_at, "short")
        lines.append((gettext("The last restore check failed: %(when)s.", when=when), True))
    return lines


def _minutes(span) -> int:
    return max(1, round(span.total_seconds() / 60))


def _minutes_up(span) -> int:
    """Whole minutes, rounded up: an upper bound never reads smaller than it is."""
    return max(1, math.ceil(span.total_seconds() / 60))


def _copy_lines() -> list[tuple[str, bool]]:
    """Continuous copies (PATIENTAPP_COPY_DIR): how often, where, the recovery point they
    give, and a warning when they have stopped or the last one failed."""
    copying = copies.state(current_app.config, clinic_settings(), copies.utc_now())
    if copying is None:
        return [(gettext("Continuous copies are off (PATIENTAPP_COPY_DIR is not set)."), False)]
    # A path reads left to right inside any sentence, Arabic too (left-to-right isolate).
    where = "\u2066" + str(copying.folder) + "\u2069"
    seconds = int(copying.interval.total_seconds())
    if seconds % 60:  # 10 s or 90 s, said as it is set, not rounded to minutes
        every = ngettext(
            "Continuous copies: every %(num)s second into %(folder)s.",
            "Continuous copies: every %(num)s seconds into %(folder)s.",
            seconds,
            folder=where,
        )
    else:
        every = ngettext(
            "Continuous copies: every %(num)s minute into %(folder)s.",
            "Continuous copies: every %(num)s minutes into %(folder)s.",
            seconds // 60,
            folder=where,
        )
    lines = [(every, False)]
    halted = copying.newest_age is not None and copying.stopped
    if not halted and copying.failed_at_utc is None:  # else it would not hold
        lines.append(
            (
                ngettext(
                    "Recovery point: a dead disk loses at most about %(num)s minute of answers.",
                    "Recovery point: a dead disk loses at most about %(num)s minutes of answers.",
                    _minutes_up(copying.recovery_point),
                ),
                False,
            )
        )
    if copies.same_disk(current_app.config) and not copying.sent_by_command:
        lines.append(
            (
                gettext(
                    "The copies are on the database's own disk and no copy command sends "
                    "them off-site: a dead disk would take both."
                ),
                True,
            )
        )
    if copying.sent_by_command:
        lines.insert(1, (gettext("Each copy is then sent off-site by the copy command."), False))
    if copying.full:
        lines.append(
            (
                ngettext(
                    "The copy disk is full: the oldest copies are removed to make room, so "
                    "the folder keeps %(num)s copy, not %(keep)s. Free space on it or give "
                    "the copies a larger disk.",
                    "The copy disk is full: the oldest copies are removed to make room, so "
                    "the folder keeps %(num)s copies, not %(keep)s. Free space on it or give "
                    "the copies a larger disk.",
                    copying.kept,
                    keep=copying.keep,
                ),
                True,
            )
        )
    if copying.newest_age is None:
        lines.append((gettext("No continuous copy has been made yet."), copying.stopped))
    elif copying.stopped:
        lines.append(
            (
                ngettext(
                    "Continuous copies have stopped: the newest is %(num)s minute old.",
                    "Continuous copies have stopped: the newest is %(num)s minutes old.",
                    _minutes(copying.newest_age),
                ),
                True,
            )
        )
    if copying.failed_at_utc is not None:
        zone = clinic_zone()
        failed = copying.failed_at_utc
        local = failed.astimezone(zone) if zone else failed.astimezone()
        when = format_datetime(local.replace(tzinfo=None), "short")
        lines.append(
            (
                gettext(
                    "The last continuous copy failed (%(when)s): %(reason)s",
                    when=when,
                    reason=copying.failure,
                ),
                True,
            )
        )
    return lines


# --- audit log ---------------------------------------------------------------------------


def _filter_form() -> AuditFilterForm:
    db = get_db()
    form = AuditFilterForm(formdata=request.args)
    named = [(audit_actions.action_name(a), a) for a in storage.audit_actions(db)]
    form.action.choices = [SelectChoice("", gettext("Any action"))] + [
        SelectChoice(action, name) for name, action in sorted(named, key=_by_name)
    ]
    form.user.choices = [SelectChoice("", gettext("Anyone"))] + [
        SelectChoice(str(u["id"]), f"{u['display_name'] or u['email']} ({u['email']})")
        for u in storage.list_users(db)
    ]
    form.validate()
    return form


def _by_name(named: tuple[str, str]) -> tuple[str, str]:
    return named[0].casefold(), named[1]


def _entry(row: dict) -> dict:
    """An audit entry as the page shows it: its action and actor named in the reader's
    language, its time in the reader's format (the clinic's local time, as stored)."""
    return {
        **row,
        "action_name": audit_actions.action_name(row["action"]),
        "who": row["user_email"] or audit_actions.actor_name(row["actor"] or "") or "—",
        "when": format_datetime(datetime.fromisoformat(row["at"]), "medium"),
    }


def _usable(form: AuditFilterForm, name: str):
    """A filter's value, or None when it is empty or was not understood."""
    field = form[name]
    return None if field.errors or field.data in (None, "") else field.data


def _query(form: AuditFilterForm) -> dict:
    """audit_entries keyword arguments from the filters that make sense."""
    since, until = _usable(form, "since"), _usable(form, "until")
    user, visit = _usable(form, "user"), _usable(form, "visit")
    return {
        "action": _usable(form, "action") or "",
        "user_id": int(user) if user else None,
        "visit_id": int(visit) if visit else None,
        "since": f"{since.isoformat()} 00:00:00" if since else "",
        "until": f"{until + timedelta(days=1)} 00:00:00" if until else "",
    }


def _link_args(form: AuditFilterForm) -> dict:
    """The usable filters as they go back into Previous / Next links."""
    names = ("action", "user", "visit", "since", "until")
    return {name: str(_usable(form, name)) for name in names if _usable(form, name) is not None}


def _page() -> int:
    page = request.args.get("page", type=int) or 1
    return min(max(page, 1), MAX_PAGE)


@bp.get("/audit")
@login_required("admin")
def audit_log():
    """Browse the audit trail, newest first, filtered by GET parameters."""
    form = _filter_form()
    page = _page()
    shown = [f"{name}={value}" for name, value in _link_args(form).items()]
    with storage.write(get_db()):  # who read the trail, and which part of it
        audit("audit_log_viewed", detail=" ".join([*shown, f"page={page}"]))
    rows = storage.audit_entries(
        get_db(), **_query(form), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    return render_template(
        "admin/audit.html",
        form=form,
        rows=[_entry(row) for row in rows[:PAGE_SIZE]],
        page=page,
        has_next=len(rows) > PAGE_SIZE,
        link_args=_link_args(form),
        ignored=any(field.errors for field in form),
    )


# --- integrations: API tokens and the CSV export ----------------------------------------


def _integrations_page(
    form: TokenForm, new_token: str | None = None, status: int = 200, export_form=None
):
    return render_template(
        "admin/integrations.html",
        form=form,
        tokens=storage.api_tokens(get_db()),
        new_token=new_token,
        api_base=f"{base_url()}/api/fhir",
        now_text=now().strftime("%Y-%m-%d %H:%M:%S"),  # an expired token says so
        export_form=export_form or _export_form(None),
    ), status


@bp.route("/integrations", methods=["GET", "POST"])
@login_required("admin")
def integrations():
    """The read-only FHIR API's tokens: create one (shown once), revoke one."""
    form = TokenForm()
    if form.validate_on_submit():
        expires = form.expires_on.data
        with storage.write(get_db()) as db:  # the token and its entry together
            token_id, token = api_tokens.create_token(
                db,
                form.name.data,
                g.user["id"],
                now(),
                expires_at=api_tokens.end_of(expires) if expires else None,
                in_progress=form.in_progress.data,
            )
            scope = ", in-progress scope" if form.in_progress.data else ""
            until = f", expires {expires}" if expires else ""
            audit("api_token_created", detail=f"token {token_id}: {form.name.data}{scope}{until}")
        # Shown on this page only, never put in the session cookie or a redirect URL.
        return _integrations_page(TokenForm(formdata=None), new_token=token)
    return _integrations_page(form, status=422 if request.method == "POST" else 200)


@bp.post("/integrations/<int:token_id>/revoke")
@login_required("admin")
def revoke_token(token_id: int):
    token = storage.get_api_token(get_db(), token_id)
    if token is None:
        abort(404)
    if not FlaskForm().validate_on_submit():
        abort(400)
    with storage.write(get_db()) as db:  # the revocation and its entry together
        revoked = storage.revoke_api_token(db, token_id, now())
        if revoked:
            audit("api_token_revoked", detail=f"token {token_id}: {token['name']}")
    if revoked:
        flash(gettext("Token revoked. The integration can no longer read answers."), "ok")
    return redirect(url_for("admin.integrations"))


@bp.post("/integrations/<int:token_id>/rotate")
@login_required("admin")
def rotate_token(token_id: int):
    """A new secret for the same token (name, scope, expiry): the old one stops at once."""
    token = storage.get_api_token(get_db(), token_id)
    if token is None:
        abort(404)
    if not FlaskForm().validate_on_submit():
        abort(400)
    with storage.write(get_db()) as db:  # the new secret and its entry together
        secret = api_tokens.rotate_token(db, token_id, now())
        if secret:
            audit("api_token_rotated", detail=f"token {token_id}: {token['name']}")
    if secret is None:
        return redirect(url_for("admin.integrations"))
    return _integrations_page(TokenForm(formdata=None), new_token=secret)


def _export_form(formdata, data=None) -> ExportForm:
    """The CSV export's form: labels in any shipped language, the clinic's default when
    none is given (a link bookmarked before there was a choice)."""
    codes = list(current_app.config["OFFERED_LANGUAGES"])
    default = current_app.config["DEFAULT_LANGUAGE"]
    default = default if default in codes else codes[0]
    if formdata is not None and not formdata.get("language"):
        formdata = formdata.copy()
        formdata["language"] = default
    form = ExportForm(formdata=formdata, data={"language": default, **(data or {})})
    form.language.choices = [
        SelectChoice(code, language_name(code), render_kw={"lang": LANGUAGES[code].tag})
        for code in codes
    ]
    return form


@bp.get("/export.csv")
@login_required("admin")
def export_csv():
    """Every visit with an appointment in the date range, one row each, audited."""
    if "since" in request.args or "until" in request.args:
        form = _export_form(request.args)
    else:  # no range given: today's visits
        form = _export_form(None, data={"since": now().date(), "until": now().date()})
    if not form.validate():
        return _integrations_page(TokenForm(formdata=None), status=422, export_form=form)
    db = get_db()
    first, last = form.since.data, form.until.data
    visits = storage.visits_between(db, first, last)
    rows = [(visit, *storage.answers_for(db, visit.id)) for visit in visits]
    with storage.write(db):
        for visit in visits:
            audit("csv_exported", visit.id)
        audit("csv_exported", detail=f"{first} to {last}: {len(visits)} visits")
    language = form.language.data
    body = exports.to_csv(questionnaire.default(), rows, language=language, zone=clinic_zone())
    filename = f"visits-{first}-{last}-{language}.csv"
    return Response(
        body,  # from a byte order mark, for Excel
        mimetype="text/csv",  # Flask adds "; charset=utf-8" to a text/* mimetype
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- outgoing mail: the relay for escalation e-mails, and its test button -------------------


def _mail_values() -> dict:
    return {key: clinic_settings()[key] for key in mail.MAIL_SETTINGS}


def _typed_mail(form: MailForm, current: dict) -> dict:
    """The settings as typed; an empty password keeps the stored one unless removed."""
    values = {key: form[key].data for key in mail.MAIL_SETTINGS if key != "smtp_password"}
    if form.remove_password.data:
        values["smtp_password"] = ""
    else:
        values["smtp_password"] = form.smtp_password.data or current["smtp_password"]
    return values


def _last_mail_entry(action: str) -> dict | None:
    """The newest audit entry of this action, its time ready to show."""
    rows = storage.audit_entries(get_db(), action=action, limit=1)
    if not rows:
        return None
    return {
        "when": format_datetime(datetime.fromisoformat(rows[0]["at"]), "short"),
        "detail": rows[0]["detail"],
    }


def _mail_page(form: MailForm, status: int = 200):
    settings = clinic_settings()
    return render_template(
        "admin/mail.html",
        form=form,
        password_stored=bool(settings["smtp_password"]),
        configured=mail.Relay.from_settings(settings).configured,
        escalate_after=escalation.escalate_after_minutes(settings),
        last_sent=_last_mail_entry("escalation_mail_sent"),
        last_failed=_last_mail_entry("escalation_mail_failed"),
    ), status


@bp.route("/mail", methods=["GET", "POST"])
@login_required("admin")
def mail_settings():
    """The relay that escalation e-mails leave through, and who gets them."""
    if request.method == "POST":
        form = MailForm()
    else:
        current = _mail_values()
        form = MailForm(data={k: v for k, v in current.items() if k != "smtp_password"})
    if form.validate_on_submit():
        current = _mail_values()
        changed = {k: v for k, v in _typed_mail(form, current).items() if current[k] != v}
        if changed:
            with storage.write(get_db()) as db:  # the settings and their entry together
                storage.save_settings(db, changed)
                # Names of what changed, never a value (the password least of all).
                audit("mail_settings_changed", detail=", ".join(sorted(changed)))
            g.pop("clinic_settings", None)
        flash(gettext("Settings saved.") if changed else gettext("Nothing was changed."), "ok")
        return redirect(url_for("admin.mail_settings"))
    return _mail_page(form, status=422 if request.method == "POST" else 200)


@bp.post("/mail/test")
@login_required("admin")
def mail_test():
    """Send a test e-mail to the on-call address now, with the saved settings, and say
    what the relay answered. Audited either way."""
    if not FlaskForm().validate_on_submit():
        abort(400)
    relay = mail.Relay.from_settings(clinic_settings())
    if not relay.configured:
        problem = gettext(
            "Outgoing mail is not set up: save a relay, a sender and an on-call address first."
        )
        action, detail, answer = "mail_test_failed", "not sent: outgoing mail is not set up", None
    else:
        board = escalation.board_link(base_url())
        message = escalation.relay_test_message(relay, clinic_name(), board)
        try:
            answer = mail.send(relay, message)  # at most mail.TIMEOUT per step
        except mail.MailError as error:
            problem, answer = str(error), None
            action, detail = "mail_test_failed", f"to {relay.oncall}: {error}"
        else:
            action, detail = "mail_test_sent", f"to {relay.oncall}: {answer}"
    with storage.write(get_db()):
        audit(action, detail=detail)
    if answer is not None:
        flash(
            gettext(
                "Test message sent to %(address)s. The relay answered: %(answer)s",
                address=relay.oncall,
                answer=answer,
            ),
            "ok",
        )
    else:
        flash(gettext("The test message was not sent. %(problem)s", problem=problem), "error")
    return redirect(url_for("admin.mail_settings"))


# --- invitations by e-mail and text ----------------------------------------------------


@bp.route("/messages", methods=["GET", "POST"])
@login_required("admin")
def message_settings():
    """The reminder, the quiet hours and the text message gateway."""
    settings = clinic_settings()
    if request.method == "POST":
        form = MessagingForm()
    else:
        form = MessagingForm(data=messages_form.form_data(settings))
    if form.validate_on_submit():
        current = {key: settings[key] for key in messages_form.MESSAGE_SETTINGS}
        typed = messages_form.typed_values(form, current)
        changed = {k: v for k, v in typed.items() if current[k] != v}
        if changed:
            with storage.write(get_db()) as db:  # the settings and their entry together
                storage.save_settings(db, changed)
                audit("message_settings_changed", detail=", ".join(sorted(changed)))
            g.pop("clinic_settings", None)
        flash(gettext("Settings saved.") if changed else gettext("Nothing was changed."), "ok")
        return redirect(url_for("admin.message_settings"))
    channels = delivery.Channels.from_settings(settings)
    return render_template(
        "admin/messages.html",
        form=form,
        header_stored=bool(settings["sms_http_auth"]),
        email_ready=channels.email,
        sms_ready=channels.sms,
        last_sent=_last_mail_entry("message_sent"),
        last_failed=_last_mail_entry("message_failed"),
    ), 422 if request.method == "POST" else 200

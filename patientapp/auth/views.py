"""The staff sign-in routes: sign in (password, then a code when a second factor is set
up), sign out, change one's password, set up the second factor, and the one-time setup
link for the first admin.

What they stand on lives beside them: ``signin`` (tries counted before they are checked,
locks, device cookies), ``sessions`` (server-side sessions, ``login_required``),
``forms``; the account and password rules are in ``domain.accounts`` and
``domain.passwords``.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

from patientapp.auth.forms import ChangePasswordForm, CodeForm, LoginForm, SetupForm
from patientapp.auth.sessions import (
    PENDING_KEY,
    SESSION_KEY,
    _new_staff_session,
    _pending_user,
    _remember_session,
    audit,
    login_required,
    mfa_required,
)
from patientapp.auth.signin import (
    MFA_LOCK_SCOPE,
    MFA_SCOPE,
    _burn_time,
    _claim,
    _failed,
    _login_scopes,
    _matching_recovery_code,
    _mfa_locked,
    _sign_in_writes,
    _signed_in,
    _signed_in_scopes,
    _succeeded,
    _trusted_device,
)
from patientapp.db import storage
from patientapp.domain import mfa, throttle
from patientapp.domain.accounts import SETUP_SETTING, AccountError, checked_account, insert_account
from patientapp.domain.passwords import (
    hash_password,
    hash_recovery_code,
    hash_secret,
    verify_password,
)
from patientapp.web import errors, tablet
from patientapp.web.context import clinic_name, get_db, now

bp = Blueprint("auth", __name__, url_prefix="/staff")
errors.STAFF.register(bp)
LOGIN_ERROR = _l(
    "That email and password don't match an active account, or the account "
    "is locked for a few minutes after too many tries."
)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/staff/") and "\\" not in target:
        return target
    return url_for("staff.board")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        db = get_db()
        email = form.email.data.strip()
        user = storage.user_by_email(db, email)
        active = user is not None and bool(user["active"])
        device = _trusted_device(db, user)
        claim = _claim(
            db,
            _login_scopes(email, known=user is not None),
            device=device,
            user_id=user["id"] if user else None,
        )
        if claim is None or not active:
            _burn_time(form.password.data)
            ok = False
        else:
            ok = verify_password(user["password_hash"], form.password.data)
        if ok and user["mfa_enrolled_at"]:
            # The password was right; the session starts only once the code is too.
            with storage.write(db):
                _succeeded(db, claim)
            session.clear()
            session[PENDING_KEY] = {
                "user": user["id"],
                "at": now().isoformat(),
                "next": _safe_next(request.args.get("next")),
                "device": claim.device,
            }
            return redirect(url_for("auth.login_code"))
        if ok:
            with storage.write(db):
                session_id, nonce = _sign_in_writes(db, user, claim)
            response = redirect(_safe_next(request.args.get("next")))
            return _signed_in(db, response, session_id, nonce)
        with storage.write(db):
            _failed(db, claim)
            # What was typed into the email box may be a password: only a known account's
            # address goes into the audit log.
            storage.audit(
                db,
                "login_failed",
                now=now(),
                user_id=user["id"] if user else None,
                actor=user["email"] if user else "",
                detail="" if user else "unknown account",
            )
        form.password.errors.append(LOGIN_ERROR)
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("staff/login.html", form=form, tablet=tablet.active()), status


@bp.route("/account", methods=["GET", "POST"])
@login_required()
def account():
    """Any staff member changes their own password; their other sessions end."""
    form = ChangePasswordForm()
    form.account = g.user
    db, status = get_db(), 200
    if form.validate_on_submit():
        user = storage.get_user(db, g.user["id"])
        claim = _claim(db, _signed_in_scopes())
        if claim is None:
            _burn_time(form.current.data)
            form.current.errors.append(LOGIN_ERROR)
        elif verify_password(user["password_hash"], form.current.data):
            new_hash = hash_password(form.password.data)
            with storage.write(db):  # the change, its consequences and its audit entry
                _succeeded(db, claim)
                storage.update_user(db, user["id"], password_hash=new_hash)
                storage.end_other_sessions(db, user["id"], hash_secret(session[SESSION_KEY]), now())
                # A browser that signed in with the old password is trusted no more.
                storage.forget_trusted_devices(db, user["id"])
                audit("password_changed")
            session["password_changed"] = True
            return redirect(url_for("auth.account"))
        else:
            form.current.errors.append(_l("That is not your current password."))
    if request.method == "POST":
        status = 422
    return render_template(
        "staff/account.html",
        form=form,
        saved=session.pop("password_changed", False),
        mfa_on=g.user["mfa_enrolled"],
    ), status


@bp.post("/logout")
@login_required(touch=False, enrolling=True)
def logout():
    form = FlaskForm()
    if form.validate_on_submit():
        session_id = session.get(SESSION_KEY)
        with storage.write(get_db()):  # the ended session and its audit entry together
            storage.end_staff_session(get_db(), hash_secret(session_id), now())
            audit("logout")
        session.clear()  # once that has committed
    return redirect(url_for("auth.login"))


# --- second factor -----------------------------------------------------------------------

BAD_CODE = _l(
    "That code is not right, or it was used already. Type the 6 digits your app shows now, "
    "or one of your recovery codes. After too many tries, wait a few minutes."
)
APP_CODES_LOCKED = _l(
    "After too many wrong codes, codes from the app are not accepted here for now. Type one "
    "of your recovery codes, or sign in on a computer where you have signed in before."
)


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    """The second step of signing in: a code from the app, or a recovery code."""
    db = get_db()
    user = _pending_user(db)
    if user is None:
        session.pop(PENDING_KEY, None)
        return redirect(url_for("auth.login"))
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        code, key = form.code.data, user["email"].lower()
        app_code = mfa.looks_like_totp(code)
        how = "" if app_code else "recovery code"
        claim = _claim(
            db,
            _login_scopes(user["email"], known=True),
            device=session[PENDING_KEY].get("device"),
            user_id=user["id"],
            mfa=key if app_code else None,
        )
        step = recovery_id = None
        if claim is not None and app_code:
            step = mfa.matching_step(user["totp_secret"], code, now())
        elif claim is not None:
            recovery_id = _matching_recovery_code(db, user, code)
        with storage.write(db):  # the code used up, the session and their audit entries
            if step is not None:
                ok = storage.use_totp_step(db, user["id"], step)  # a code works once
            else:
                ok = recovery_id is not None and storage.use_recovery_code(db, recovery_id, now())
            if ok:
                session_id, nonce = _sign_in_writes(db, user, claim, detail=how)
            else:
                _failed(db, claim)
                storage.audit(
                    db, "mfa_failed", now=now(), user_id=user["id"], actor=user["email"], detail=how
                )
        if ok:
            target = _safe_next(session[PENDING_KEY].get("next"))
            return _signed_in(db, redirect(target), session_id, nonce)
        locked = claim is None and app_code and _mfa_locked(db, key)
        form.code.errors.append(APP_CODES_LOCKED if locked else BAD_CODE)
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("staff/login_code.html", form=form), status


def _enrolment_page(db, form: CodeForm, status: int = 200):
    user = storage.get_user(db, g.user["id"])
    secret = user["totp_pending"]
    if not secret:
        secret = mfa.new_secret()
        storage.set_totp_pending(db, user["id"], secret)
    uri = mfa.provisioning_uri(secret, user["email"], clinic_name())
    return render_template(
        "staff/mfa.html",
        form=form,
        qr_svg=mfa.qr_svg(uri, title=str(_l("QR code to add this account to your app"))),
        secret=mfa.spaced(secret),
        required=mfa_required(g.user),
    ), status


@bp.route("/account/mfa", methods=["GET", "POST"])
@login_required(enrolling=True)
def mfa_setup():
    """Set up the second factor: scan the QR code, confirm with a code, keep the recovery
    codes shown once. Once set up, only an admin's reset lets it be set up again."""
    db = get_db()
    if g.user["mfa_enrolled"]:
        return render_template("staff/mfa.html", enrolled=True)
    form = CodeForm()
    if not form.validate_on_submit():
        return _enrolment_page(db, form, 422 if request.method == "POST" else 200)
    user = storage.get_user(db, g.user["id"])
    claim = _claim(db, _signed_in_scopes())
    step = None
    if claim is not None and user["totp_pending"]:
        step = mfa.matching_step(user["totp_pending"], form.code.data, now())
    if step is None:
        form.code.errors.append(BAD_CODE)
        return _enrolment_page(db, form, 422)
    codes = mfa.new_recovery_codes()
    code_hashes = [hash_recovery_code(mfa.normalise(code)) for code in codes]
    with storage.write(db):  # the new factor, the other sessions ended and the audit entry
        _succeeded(db, claim)
        storage.enrol_totp(db, user["id"], step=step, code_hashes=code_hashes, now=now())
        storage.end_other_sessions(db, user["id"], hash_secret(session[SESSION_KEY]), now())
        for scope in (MFA_SCOPE, MFA_LOCK_SCOPE):  # a new app: strangers' count starts again
            throttle.forget(db, scope, user["email"].lower())
        audit("mfa_enrolled")
    return render_template("staff/mfa.html", codes=codes)


# --- first admin -------------------------------------------------------------------------


@bp.route("/setup/<token:token>", methods=["GET", "POST"])
def setup(token: str):
    db = get_db()
    expected = storage.get_settings(db).get(SETUP_SETTING)
    if (
        storage.count_users(db)
        or not expected
        or not secrets.compare_digest(expected, hash_secret(token))
    ):
        abort(404)
    form = SetupForm()
    if form.validate_on_submit():
        try:
            with storage.write(db):  # the account, its audit entry and its session
                user_id = _create_first_admin(db, form)
                user = storage.get_user(db, user_id)
                storage.audit(
                    db,
                    "user_created",
                    now=now(),
                    user_id=user_id,
                    actor=user["email"],
                    detail="first admin via setup link",
                )
                session_id = _new_staff_session(db, user)
        except AccountError as error:
            form[error.field].errors.append(str(error))
        else:
            _remember_session(session_id)
            return redirect(url_for("staff.board"))
    return render_template("staff/setup.html", form=form), 200 if request.method == "GET" else 422


def _create_first_admin(db, form: SetupForm) -> int:
    """The account and the end of the setup link in one transaction: only one wins."""
    account = checked_account(
        db,
        email=form.email.data,
        password=form.password.data,
        role="admin",
        display_name=form.display_name.data,
    )
    with storage.write(db):
        if storage.count_users(db):
            abort(404)
        user_id = insert_account(db, account, now())
        storage.delete_setting(db, SETUP_SETTING)
    return user_id

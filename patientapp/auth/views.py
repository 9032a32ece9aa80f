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
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

from patientapp.auth import provider
from patientapp.auth.forms import ChangePasswordForm, CodeForm, LoginForm, SetupForm
from patientapp.auth.sessions import (
    PENDING_KEY,
    SESSION_KEY,
    _new_staff_session,
    _pending_user,
    _remember_session,
    audit,
    fresh_session,
    login_required,
    mfa_required,
)
from patientapp.auth.signin import (
    MFA_LOCK_SCOPE,
    MFA_SCOPE,
    Claim,
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
    audit_unsigned,
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
from patientapp.web.context import base_url, clinic_name, clinic_settings, get_db, now

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
    if request.method == "GET":
        # Back at the start: a sign-in left at its code step is dropped from the cookie
        # (the provider's ID token with it, on a shared computer).
        session.pop(PENDING_KEY, None)
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
        # Where only admins may use a password, anyone else's is never checked: the
        # answer is a wrong password's, so it tells nobody whether it was right.
        refused = active and not _password_allowed(user)
        if claim is None or not active or refused:
            _burn_time(form.password.data)
            ok = False
        else:
            ok = verify_password(user["password_hash"], form.password.data)
        if ok and user["mfa_enrolled_at"]:
            # The password was right; the session starts only once the code is too.
            with storage.write(db):
                _succeeded(db, claim)
            fresh_session()
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
                detail=(
                    "password sign-in is for admins only"
                    if refused and claim is not None
                    else ("" if user else "unknown account")
                ),
            )
        form.password.errors.append(LOGIN_ERROR)
        status = 401
    elif request.method == "POST":
        status = 400
    return _login_page(form, status)


def _login_page(form: LoginForm | None = None, status: int = 200, problem: str = ""):
    """The sign-in page: the clinic's sign-in service first when one is set up, then the
    password form (for admins only when Settings say so)."""
    found = provider.settings()
    return render_template(
        "staff/login.html",
        form=form or LoginForm(formdata=None),
        tablet=tablet.active(),
        provider_name=found.name if found else "",
        admins_only=found is not None and clinic_settings()["local_sign_in"] == "admins",
        problem=problem,
        next=_safe_next(request.args.get("next")),
    ), status


def _password_allowed(user: dict) -> bool:
    """Whether this account may sign in with a password: always without a sign-in
    service; with one, admins always (their way in when it is down), others as Settings
    say."""
    if provider.settings() is None or user["role"] == "admin":
        return True
    return clinic_settings()["local_sign_in"] != "admins"


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
        session_hash = hash_secret(session.get(SESSION_KEY))
        with storage.write(get_db()):  # the ended session and its audit entry together
            hint = storage.logout_hint(get_db(), session_hash)  # cleared as it ends
            storage.end_staff_session(get_db(), session_hash, now())
            audit("logout")
        session.clear()  # once that has committed
        if g.user["provider"] and g.user["provider"] == _issuer():
            # Signed in with the clinic's sign-in service: end its session too
            # (RP-initiated logout), which comes back to the signed-out page.
            target = provider.logout_url(base_url() + url_for("auth.signed_out"), hint)
            if target:
                return redirect(target)
    return redirect(url_for("auth.login"))


@bp.get("/signed-out")
def signed_out():
    """Where the sign-in service sends someone back after signing out there too."""
    return _login_page(problem=gettext("You are signed out, here and at the sign-in service."))


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
                session_id, nonce = _sign_in_writes(
                    db,
                    user,
                    claim,
                    detail=how,
                    provider=session[PENDING_KEY].get("provider"),
                    id_token=session[PENDING_KEY].get("id_token"),
                )
            else:
                _failed(db, claim)
                storage.audit(
                    db, "mfa_failed", now=now(), user_id=user["id"], actor=user["email"], detail=how
                )
        if ok:
            if session[PENDING_KEY].get("identity"):
                with storage.write(db):
                    storage.identity_signed_in(db, session[PENDING_KEY]["identity"], now())
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


# --- the clinic's sign-in service (OpenID Connect; the protocol is in auth/provider.py) ---

PROVIDER_FLOW = "provider_flow"  # where to go afterwards, and the admin's link being used
PROVIDER_FAILED = _l(
    "Signing in with the clinic's sign-in service did not work. Please try again. If it "
    "keeps happening, tell an admin the time it happened."
)
PROVIDER_DOWN = _l(
    "The clinic's sign-in service cannot be reached right now. Please try again in a few "
    "minutes. Admins can sign in with their password below."
)
NOT_LINKED = _l(
    "You signed in at the clinic's sign-in service, but that sign-in is not linked to an "
    "account here. Ask an admin for a link to your account."
)


HINT_IN_COOKIE = 2048  # characters of ID token the pending sign-in's cookie may carry


def _issuer() -> str | None:
    found = provider.settings()
    return found.issuer if found else None


def _provider_failed(reason: str, message, status: int, user: dict | None = None):
    """Audit a sign-in with the provider that did not let anyone in, and say so (429
    once one client's failures fill their window: see audit_unsigned)."""
    db = get_db()
    with storage.write(db):
        written = audit_unsigned(db, "provider_login_failed", reason, user)
    return _login_page(status=status if written else 429, problem=str(message))


def _to_provider(next_page: str, link: str | None = None):
    try:
        response = provider.authorize_redirect(
            base_url() + url_for("auth.provider_callback"), fresh=link is not None
        )
    except provider.SignInFailed as failure:
        if failure.unreachable:
            return _provider_failed(failure.reason, PROVIDER_DOWN, 503)
        return _provider_failed(failure.reason, PROVIDER_FAILED, 502)
    session[PROVIDER_FLOW] = {"next": next_page, "link": link}
    return response


@bp.get("/login/provider")
def provider_start():
    """The "Sign in with ..." link: on to the provider's own sign-in page. A link, not a
    form: the provider's authorization endpoint may be on another origin than its issuer,
    and a form's redirects there would meet the pages' form-action. Starting a sign-in
    changes nothing here; the state it makes is this browser's alone."""
    if provider.settings() is None:
        abort(404)
    return _to_provider(_safe_next(request.args.get("next")))


@bp.get("/login/provider/callback")
def provider_callback():
    """The provider sends the browser back here with a code (or an error)."""
    if provider.settings() is None:
        abort(404)
    flow = session.pop(PROVIDER_FLOW, None) or {}
    try:
        identity = provider.finish()
    except provider.SignInFailed as failure:
        message = PROVIDER_DOWN if failure.unreachable else PROVIDER_FAILED
        return _provider_failed(failure.reason, message, 503 if failure.unreachable else 401)
    db = get_db()
    with storage.write(db):  # the binding, if any, and its audit entry together
        user, refused = _bound_account(db, identity, flow.get("link"))
    if user is None:
        return _provider_failed(
            refused, NOT_LINKED if refused.startswith("unknown") else PROVIDER_FAILED, 403
        )
    if not user["active"]:
        return _provider_failed("account deactivated", PROVIDER_FAILED, 403, user)
    next_page = _safe_next(flow.get("next"))
    trusted = bool(clinic_settings()["provider_trust_mfa"]) and provider.used_second_factor(
        identity
    )
    if user["mfa_enrolled_at"] and not trusted:
        # Who it is is proven; the session starts once this app's code is right too.
        fresh_session()
        session[PENDING_KEY] = {
            "user": user["id"],
            "at": now().isoformat(),
            "next": next_page,
            "device": None,
            "provider": identity.issuer,
            "identity": user["identity_id"],
            # In the signed cookie until the code is right (the session then keeps it),
            # and only while it leaves the cookie well within a browser's 4 KB.
            "id_token": identity.id_token if 0 < len(identity.id_token) <= HINT_IN_COOKIE else None,
        }
        return redirect(url_for("auth.login_code"))
    with storage.write(db):
        storage.identity_signed_in(db, user["identity_id"], now())
        session_id, nonce = _sign_in_writes(
            db,
            user,
            Claim(()),
            provider=identity.issuer,
            provider_mfa=trusted,
            id_token=identity.id_token or None,
        )
    return _signed_in(db, redirect(next_page), session_id, nonce)


def _bound_account(db, identity: provider.Identity, link: str | None) -> tuple[dict | None, str]:
    """In the caller's transaction: the account this identity is bound to, binding it
    first by an admin's link or, when Settings allow, by the verified e-mail; else None
    and why (for the audit log). Nobody is ever created."""
    user = storage.identity_user(db, identity.issuer, identity.subject)
    if link is not None:
        row = storage.identity_link(db, link, now())
        if row is None:
            return None, "link expired or already used"
        if user is not None and user["id"] != row["user_id"]:
            return None, "identity already linked to another account"
        if user is None and _linked_here(db, row["user_id"], identity.issuer):
            return None, "account already linked to another identity"
        storage.use_identity_link(db, link, now())
        if user is None:
            return _link(db, row["user_id"], identity, "admin's link"), ""
        return user, ""
    if user is not None:
        return user, ""
    if clinic_settings()["provider_link_by_email"] and identity.email_verified and identity.email:
        match = storage.user_by_email_any_case(db, identity.email)
        free = match is not None and not _linked_here(db, match["id"], identity.issuer)
        if free and match["active"]:
            return _link(db, match["id"], identity, "verified e-mail"), ""
    # The provider's e-mail claim names who tried (staff, never a patient) for the admin.
    return None, "unknown subject" + (f" ({identity.email})" if identity.email else "")


def _linked_here(db, user_id: int, issuer: str) -> bool:
    return any(row["issuer"] == issuer for row in storage.user_identities(db, user_id))


def _link(db, user_id: int, identity: provider.Identity, how: str) -> dict:
    storage.link_identity(db, user_id, identity.issuer, identity.subject, how, now())
    user = storage.identity_user(db, identity.issuer, identity.subject)
    storage.audit(
        db, "provider_linked", now=now(), user_id=user["id"], actor=user["email"], detail=how
    )
    return user


def _open_link(token: str) -> tuple[str, dict]:
    """An admin's link that still works (its hash and row), else 404."""
    if provider.settings() is None:
        abort(404)
    link_hash = hash_secret(token)
    row = storage.identity_link(get_db(), link_hash, now())
    if row is None or not row["active"]:
        abort(404)
    return link_hash, row


@bp.get("/link/<token:token>")
def provider_link(token: str):
    """An admin's one-time link: its owner signs in at the provider, which binds that
    identity to their account here."""
    _link_hash, row = _open_link(token)
    return render_template(
        "staff/provider_link.html",
        email=row["email"],
        provider_name=provider.settings().name,
        start=url_for("auth.provider_link_start", token=token),
    )


@bp.get("/link/<token:token>/start")
def provider_link_start(token: str):
    """On to the provider, where the person must sign in again (prompt=login)."""
    link_hash, _row = _open_link(token)
    return _to_provider(url_for("staff.board"), link=link_hash)

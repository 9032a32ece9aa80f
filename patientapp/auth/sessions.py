"""Server-side staff sessions: starting and ending one, the signed-in user (with the idle
and absolute timeouts), `login_required` with its roles and second-factor rule, the audit
helper that records what the signed-in user did, and the few minutes between a right
password and its code (``PENDING_KEY``).

The cookie holds only a random session id; the database keeps its SHA-256 hash with
the times that enforce the idle and absolute timeouts, so logout (or an admin disabling
an account) ends a session for good, even for a copied cookie.
"""

from __future__ import annotations

import functools
import secrets
from datetime import datetime, timedelta

from flask import abort, current_app, g, redirect, request, session, url_for

from patientapp.db import storage
from patientapp.domain.passwords import hash_secret
from patientapp.web.context import clinic_settings, get_db, now

SESSION_KEY = "staff"
PENDING_KEY = "staff_pending"  # password right, second factor still to come
PENDING_MINUTES = 5


def _new_staff_session(
    db,
    user: dict,
    provider: str | None = None,
    provider_mfa: bool = False,
    id_token: str | None = None,
) -> str:
    """A server-side session for `user`, written in the caller's transaction; its id goes
    into the cookie only once that has committed (_remember_session). `provider`: the
    issuer of the clinic's sign-in service it came through; `provider_mfa`: that
    service's second factor counts as ours; `id_token`: that service's ID token, sent
    back when signing out there."""
    session_id = secrets.token_urlsafe(32)
    storage.forget_stale_id_tokens(db, now(), current_app.config)
    storage.start_staff_session(
        db, hash_secret(session_id), user["id"], now(), provider, provider_mfa, id_token
    )
    return session_id


def fresh_session() -> None:
    """Start a fresh cookie at a step of signing in: the old content, CSRF secret
    included, is dropped; only the language the person chose stays (not a secret)."""
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def _remember_session(session_id: str) -> None:
    """Start a fresh cookie (fresh_session) holding the new session's id."""
    fresh_session()
    session[SESSION_KEY] = session_id
    session.permanent = False


def end_session() -> None:
    """End this browser's staff session on the server (inside the caller's write, with
    its audit entry); the cookie is cleared once that is saved (session.clear())."""
    session_id = session.get(SESSION_KEY)
    if session_id:
        storage.end_staff_session(get_db(), hash_secret(session_id), now())


def current_user(touch: bool = True) -> dict | None:
    """The logged-in staff member, enforcing idle and absolute timeouts."""
    session_id = session.get(SESSION_KEY)
    if not session_id:
        return None
    db, moment = get_db(), now()
    row = storage.staff_session(db, hash_secret(session_id))
    cfg = current_app.config
    if row is None or not row["active"]:
        session.pop(SESSION_KEY, None)
        return None
    idle = moment - datetime.fromisoformat(row["last_seen_at"])
    age = moment - datetime.fromisoformat(row["created_at"])
    if idle > timedelta(minutes=cfg["STAFF_IDLE_MINUTES"]) or age > timedelta(
        hours=cfg["STAFF_ABSOLUTE_HOURS"]
    ):
        storage.end_staff_session(db, row["id"], moment)
        session.pop(SESSION_KEY, None)
        return None
    if touch:
        storage.touch_staff_session(db, row["id"], moment)
    return {
        "id": row["user_id"],
        "email": row["email"],
        "role": row["role"],
        "display_name": row["display_name"] or row["email"],
        "mfa_enrolled": bool(row["mfa_enrolled_at"]),
        "provider": row["provider"],
        # The clinic's sign-in service asked for a second factor and Settings accept it.
        "provider_mfa": bool(row["provider_mfa"]),
    }


def mfa_required(user: dict) -> bool:
    """Whether this person must sign in with a second factor: admins and psychiatrists
    (config MFA_REQUIRED_ROLES), and front desk too when the clinic's setting says so."""
    if user["role"] in current_app.config["MFA_REQUIRED_ROLES"]:
        return True
    return user["role"] == "frontdesk" and bool(clinic_settings()["mfa_frontdesk"])


def login_required(
    *roles: str, touch: bool = True, hide_as_404: bool = False, enrolling: bool = False
):
    """Require a logged-in user, optionally with one of the roles.

    With hide_as_404 a wrong role gets the same 404 as a missing object, so nobody
    learns whether a visit exists. Someone who must have a second factor and has none
    yet reaches only the pages marked `enrolling` (setting it up, signing out).
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user(touch=touch() if callable(touch) else touch)
            if user is None:
                if request.method == "GET" and not request.path.endswith(".json"):
                    return redirect(url_for("auth.login", next=request.path))
                abort(401)
            if (
                not enrolling
                and not user["mfa_enrolled"]
                and not user["provider_mfa"]
                and mfa_required(user)
            ):
                if request.method == "GET" and not request.path.endswith(".json"):
                    return redirect(url_for("auth.mfa_setup"))
                abort(403)
            if roles and user["role"] not in roles:
                audit_refused(user)
                abort(404 if hide_as_404 else 403)
            g.user = user
            return view(*args, **kwargs)

        return wrapped

    return decorator


REFUSED_SCOPE = "refused-audit"


def audit_limited(
    db,
    scope: str,
    key: str,
    action: str,
    *,
    detail: str = "",
    user: dict | None = None,
    actor: str = "",
    visit_id: int | None = None,
) -> bool:
    """In the caller's write transaction: an audit entry for something that can be
    repeated from outside at will (a refused page, a refused sign-in), at most
    UNSIGNED_AUDIT_PER_CLIENT per key of the scope within 15 minutes, so nobody can fill
    the append-only log; beyond that nothing is written and False says so."""
    from patientapp.domain import throttle

    moment = now()
    window = refusals_window(scope)
    if throttle.is_full(db, window, key, moment):
        return False
    storage.record_attempts(db, [(scope, key)], moment)
    storage.audit(
        db,
        action,
        now=moment,
        user_id=user["id"] if user else None,
        actor=user["email"] if user else actor,
        visit_id=visit_id,
        detail=detail,
    )
    return True


def refusals_window(scope: str):
    from patientapp.domain import throttle

    limit = current_app.config["UNSIGNED_AUDIT_PER_CLIENT"]
    return throttle.Window(scope, limit, timedelta(minutes=15))


def audit_refused(user: dict) -> None:
    """A signed-in staff member refused what their role may not do ("access_refused":
    the route's pattern, never its path; the visit it names, when there is one, else its
    number in the detail)."""
    db = get_db()
    rule = request.url_rule.rule if request.url_rule else "?"
    detail = f"{request.method} {rule} as {user['role']}"
    number = (request.view_args or {}).get("visit_id")
    found = isinstance(number, int) and storage.get_visit(db, number) is not None
    if isinstance(number, int) and not found:
        detail += f" (no visit {number})"
    record_refusal(f"user:{user['id']}", detail, user=user, visit_id=number if found else None)


def record_refusal(
    key: str, detail: str, *, user: dict | None = None, actor: str = "", visit_id=None
) -> None:
    """An "access_refused" entry for a refusal someone known caused (a signed-in person,
    keyed "user:<id>"; a token we issued, "token:<id>"), within the limit of such entries
    per key; past it, no write lock is taken at all."""
    from patientapp.domain import throttle

    db = get_db()
    if throttle.is_full(db, refusals_window(REFUSED_SCOPE), key, now()):
        return
    with storage.write(db):
        audit_limited(
            db,
            REFUSED_SCOPE,
            key,
            "access_refused",
            detail=detail,
            user=user,
            actor=actor,
            visit_id=visit_id,
        )


def audit(action: str, visit_id: int | None = None, detail: str = "") -> None:
    """Record who did what (never answer content) for the logged-in user."""
    user = g.get("user")
    storage.audit(
        get_db(),
        action,
        now=now(),
        user_id=user["id"] if user else None,
        actor=user["email"] if user else "",
        visit_id=visit_id,
        detail=detail,
    )


def _pending_user(db) -> dict | None:
    """The account whose password was just right, while its code is still awaited."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    try:
        started = datetime.fromisoformat(pending["at"])
        user = storage.get_user(db, int(pending["user"]))
    except (KeyError, TypeError, ValueError):
        return None
    if now() - started > timedelta(minutes=PENDING_MINUTES):
        return None
    if user is None or not user["active"] or not user["mfa_enrolled_at"]:
        return None
    return user

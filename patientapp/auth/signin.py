"""Signing in safely: every try counted before it is checked, the locks on strangers'
wrong passwords and app codes, trusted-device cookies, and what a sign-in that
succeeded writes and gives the browser. The routes that use these are in ``views``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, request, session
from itsdangerous import BadSignature, URLSafeSerializer

from patientapp.auth.sessions import (
    SESSION_KEY,
    _new_staff_session,
    _remember_session,
    audit_limited,
)
from patientapp.db import storage
from patientapp.domain import mfa, throttle
from patientapp.domain.passwords import hash_password, hash_secret, verify_password
from patientapp.web import tablet
from patientapp.web.context import client_network, now

# --- login throttling --------------------------------------------------------------------
#
# Every try is counted before it is checked, in the same write transaction as the check
# (_claim), so concurrent tries see each other and no limit lets more through than it
# says; a try that turns out right has its rows taken back. Three kinds of limit:
#
# - strangers' wrong passwords and codes, per account and per client address, lock for
#   LOGIN_LOCKOUT_MINUTES (_lock_started);
# - strangers' wrong app codes per account lock app codes for a day, twice as long for
#   each further lock before a successful sign-in (_mfa_locked);
# - a browser that signed in before carries a device cookie (OWASP, "Slow Down Online
#   Guessing Attacks with Device Cookies"): those two locks do not hold it, so someone who
#   knows a staff e-mail cannot keep its owner out; its own wrong tries count against it,
#   and at LOGIN_FAILURES_PER_DEVICE it is a stranger again.

DEVICE_COOKIE = "patientapp_device"
DEVICE_SALT = "patientapp-device-cookie"
DEVICES_PER_BROWSER = 5  # a shared desk computer keeps the latest few accounts' cookies
DEVICE_SCOPE = "login-device"
MFA_SCOPE, MFA_LOCK_SCOPE = "mfa-account", "mfa-lock"


@dataclass(frozen=True)
class Claim(throttle.Claim):
    """A sign-in try counted before it is checked (its rows: `ids`)."""

    device: str | None = None  # the trusted device it came from (the nonce's hash)
    mfa: str | None = None  # the account whose strangers' app codes it counts among


def _lockout(scope: str, limit: int) -> throttle.Window:
    """`limit` failures within LOGIN_LOCKOUT_MINUTES lock for as long (see _lock_started)."""
    minutes = current_app.config["LOGIN_LOCKOUT_MINUTES"]
    return throttle.Window(scope, limit, timedelta(minutes=minutes))


def _lock_started(db, window: throttle.Window, key: str) -> datetime | None:
    """When the lock on `key` began, if it still holds. Tries while locked are refused
    uncounted (see _claim), so one wrong password every few minutes cannot keep an
    account locked for good."""
    return throttle.lock_start(db, window, key, now())


def _login_scopes(email: str, known: bool) -> list[tuple[throttle.Window, str]]:
    """(window, key) counting sign-in failures: per client address, and per account when
    one exists (an unknown name's raw text, perhaps a password, is not kept)."""
    cfg = current_app.config
    client = client_network(request.remote_addr)  # an IPv6 /64 is one client
    scopes = [(_lockout("login-client", cfg["LOGIN_FAILURES_PER_CLIENT"]), client)]
    if known:
        scopes.append((_lockout("login-account", cfg["LOGIN_FAILURES_PER_ACCOUNT"]), email.lower()))
    return scopes


def _signed_in_scopes() -> list[tuple[throttle.Window, str]]:
    """Wrong tries by someone already signed in (the current password, an enrolment
    code) count against their own session: a stranger's wrong sign-ins, which lock the
    account for strangers, must not keep its owner from changing a password or setting
    up the second factor."""
    limit = current_app.config["LOGIN_FAILURES_PER_ACCOUNT"]
    return [(_lockout("signed-in", limit), hash_secret(session[SESSION_KEY]))]


def _mfa_lock_length(count: int) -> timedelta:
    """The count-th lock since the last successful sign-in: MFA_LOCK_HOURS, doubled for
    each lock before it, at most MFA_LOCK_MAX_HOURS."""
    cfg = current_app.config
    return timedelta(hours=min(cfg["MFA_LOCK_HOURS"] * 2 ** (count - 1), cfg["MFA_LOCK_MAX_HOURS"]))


def mfa_lock_end(db, email: str) -> datetime | None:
    """When the lock on strangers' app codes for this account ends, if one holds."""
    locks = throttle.noted(db, MFA_LOCK_SCOPE, email.lower())
    if locks and locks[-1] + _mfa_lock_length(len(locks)) > now():
        return locks[-1] + _mfa_lock_length(len(locks))
    return None


def _mfa_window() -> throttle.Window:
    """Strangers' app codes per account: MFA_FAILURES_PER_LOCK within the window lock."""
    cfg = current_app.config
    span = timedelta(hours=cfg["MFA_FAILURE_WINDOW_HOURS"])
    return throttle.Window(MFA_SCOPE, cfg["MFA_FAILURES_PER_LOCK"], span)


def _mfa_round(db, key: str) -> int:
    """Strangers' app codes counted toward the next lock: within the window, and after
    the last lock began."""
    locks = throttle.noted(db, MFA_LOCK_SCOPE, key)
    after_lock = locks[-1] + timedelta(seconds=1) if locks else None
    return throttle.count(db, _mfa_window(), key, now(), not_before=after_lock)


def _mfa_locked(db, key: str) -> bool:
    """Whether strangers' app codes for this account are refused: during a lock, and while
    MFA_FAILURES_PER_LOCK wrong ones (or tries still being checked) are in the window. With
    a window and a first lock of 24 hours at least, no 24 hours hold more tries than that."""
    return mfa_lock_end(db, key) is not None or _mfa_round(db, key) >= _mfa_window().limit


def _device_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=DEVICE_SALT)


def _device_nonces() -> list[str]:
    """The nonces in this browser's device cookie (none if it is missing or forged)."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return []
    try:
        nonces = _device_serializer().loads(raw)
    except BadSignature:
        return []
    if not isinstance(nonces, list):
        return []
    return [n for n in nonces if isinstance(n, str) and n.isascii()][:DEVICES_PER_BROWSER]


def _device_ok(db, device: str, user_id: int) -> bool:
    """Whether the device (a nonce's hash) is trusted for this account: issued to it, not
    older than DEVICE_COOKIE_DAYS, and short of its own failure limit."""
    cfg = current_app.config
    row = storage.trusted_device(db, device)
    if row is None or row["user_id"] != user_id:
        return False
    if datetime.fromisoformat(row["created_at"]) <= now() - timedelta(
        days=cfg["DEVICE_COOKIE_DAYS"]
    ):
        return False
    return not throttle.is_full(db, _device_window(), device, now())


def _device_window() -> throttle.Window:
    """A trusted device's own wrong tries, ever: at the limit it is trusted no more."""
    return throttle.Window(DEVICE_SCOPE, current_app.config["LOGIN_FAILURES_PER_DEVICE"])


def _trusted_device(db, user: dict | None) -> str | None:
    """This browser's trusted device for `user` (the nonce's hash), if it has one."""
    if user is None or not user["active"]:
        return None
    return next(
        (hash_secret(n) for n in _device_nonces() if _device_ok(db, hash_secret(n), user["id"])),
        None,
    )


def _claim(
    db, scopes, *, device: str | None = None, user_id: int | None = None, mfa: str | None = None
) -> Claim | None:
    """Count a try before it is checked, or refuse it (None), in one write transaction.

    From a trusted device it counts against that device alone, and no lock on strangers
    holds it. Otherwise it is refused while any of `scopes` is locked, or, for an app
    code (`mfa`: the account's key), while strangers' app codes are; else it counts under
    each scope and, for an app code, toward the escalating lock."""
    with storage.write(db):
        if device is not None and _device_ok(db, device, user_id):
            return Claim(throttle.claim(db, [(DEVICE_SCOPE, device)], now()).ids, device)
        if any(_lock_started(db, window, key) for window, key in scopes):
            return None
        if mfa is not None and _mfa_locked(db, mfa):
            return None
        pairs = [(window.scope, key) for window, key in scopes]
        if mfa is not None:
            pairs.append((MFA_SCOPE, mfa))
        return Claim(throttle.claim(db, pairs, now()).ids, mfa=mfa)


def _failed(db, claim: Claim | None) -> None:
    """In the caller's transaction: a counted try was wrong. Its rows stay as failures; a
    device at its limit is trusted no more; strangers' app codes at theirs lock."""
    if claim is None:
        return
    if claim.device is not None and throttle.is_full(db, _device_window(), claim.device, now()):
        storage.forget_trusted_device(db, claim.device)
    if (
        claim.mfa is not None
        and mfa_lock_end(db, claim.mfa) is None
        and _mfa_round(db, claim.mfa) >= _mfa_window().limit
    ):
        throttle.note(db, MFA_LOCK_SCOPE, claim.mfa, now())  # the lock begins


def _succeeded(db, claim: Claim) -> None:
    """In the caller's transaction: a counted try was right, so it is no failure."""
    throttle.release(db, claim)


def _trust_browser(db, user: dict, replaced: str | None) -> str | None:
    """In the sign-in's transaction: a new device nonce for this browser and account. The
    one it came with is retired, so a copied cookie stops at its owner's next sign-in.
    None on a waiting-room tablet, which patients hold."""
    if replaced is not None:
        storage.forget_trusted_device(db, replaced)
    if tablet.active():
        return None
    moment = now()
    days = current_app.config["DEVICE_COOKIE_DAYS"]
    storage.prune_trusted_devices(db, moment - timedelta(days=days))
    nonce = secrets.token_urlsafe(32)
    storage.add_trusted_device(db, hash_secret(nonce), user["id"], moment)
    return nonce


def _set_device_cookie(db, response, nonce: str) -> None:
    """Signed, HttpOnly, SameSite=Lax, Secure when configured, for /staff only: the new
    nonce first, then this browser's other accounts' that still count."""
    kept = [n for n in _device_nonces() if storage.trusted_device(db, hash_secret(n)) is not None]
    days = current_app.config["DEVICE_COOKIE_DAYS"]
    response.set_cookie(
        DEVICE_COOKIE,
        _device_serializer().dumps([nonce, *kept][:DEVICES_PER_BROWSER]),
        max_age=days * 24 * 3600,
        path="/staff",
        httponly=True,
        samesite="Lax",
        secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
    )


_DUMMY_HASH: dict[str, str] = {}


def _burn_time(password: str) -> None:
    """Verify against a dummy hash so unknown accounts take as long as known ones."""
    key = current_app.config.get("PASSWORD_HASHER", "argon2")
    if key not in _DUMMY_HASH:
        _DUMMY_HASH[key] = hash_password(secrets.token_hex(8))
    verify_password(_DUMMY_HASH[key], password)


def _matching_recovery_code(db, user: dict, code: str) -> int | None:
    """The id of the account's unused recovery code that was typed, if any."""
    typed = mfa.normalise(code)
    if len(typed) != mfa.RECOVERY_LENGTH:
        return None
    for row in storage.unused_recovery_codes(db, user["id"]):
        if verify_password(row["code_hash"], typed):
            return row["id"]
    return None


# --- what nobody signed in caused ---------------------------------------------------------

UNSIGNED_SCOPE = "unsigned-audit"


def audit_unsigned(db, action: str, detail: str, user: dict | None = None) -> bool:
    """In the caller's write transaction: the audit entry for something a browser nobody
    signed in to caused (a sign-in with the provider that failed, a refused EHR launch).
    At most UNSIGNED_AUDIT_PER_CLIENT per client (an IPv6 /64 is one) within 15 minutes,
    so nobody can fill the append-only log from outside; beyond that nothing is written
    and False says so (the caller refuses as before, with 429)."""
    key = client_network(request.remote_addr)
    return audit_limited(db, UNSIGNED_SCOPE, key, action, detail=detail, user=user)


# --- a sign-in that succeeded ------------------------------------------------------------


def _sign_in_writes(
    db,
    user: dict,
    claim: Claim,
    detail: str = "",
    provider: str | None = None,
    provider_mfa: bool = False,
    id_token: str | None = None,
) -> tuple[str, str | None]:
    """In the caller's transaction: all a sign-in changes, with its audit entries. The
    session id and the device nonce to give the browser once it commits. `provider`: the
    issuer when the clinic's sign-in service proved who it is (see auth/provider.py),
    `id_token` its ID token for signing out there."""
    _succeeded(db, claim)
    session_id = _new_staff_session(db, user, provider, provider_mfa, id_token)
    key = user["email"].lower()
    if claim.device is None:
        # A stranger who got it right ends the count of wrong passwords; one signing in
        # on a trusted device leaves strangers' locks where they are.
        throttle.forget(db, "login-account", key)
    throttle.forget(db, MFA_LOCK_SCOPE, key)  # the next lock is the first again
    how = ""
    if provider is not None:
        how = "sign-in service, its second factor" if provider_mfa else "sign-in service"
    storage.audit(
        db,
        "login",
        now=now(),
        user_id=user["id"],
        actor=user["email"],
        detail=", ".join(part for part in (how, detail) if part),
    )
    if detail:
        storage.audit(db, "recovery_code_used", now=now(), user_id=user["id"], actor=user["email"])
    if tablet.active():
        # A staff sign-in is the only way out of tablet mode.
        storage.audit(db, "tablet_mode_left", now=now(), user_id=user["id"], actor=user["email"])
    return session_id, _trust_browser(db, user, claim.device)


def _signed_in(db, response, session_id: str, nonce: str | None):
    """After the sign-in committed: the browser's session, device cookie and tablet mode."""
    _remember_session(session_id)
    if nonce is not None:
        _set_device_cookie(db, response, nonce)
    if tablet.active():
        tablet.turn_off(response)
    return response

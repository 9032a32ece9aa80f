"""Staff accounts: password hashing, login with lockout, server-side sessions, roles.

The cookie holds only a random session id; the database keeps its SHA-256 hash with
the times that enforce the idle and absolute timeouts, so logout (or an admin disabling
an account) ends a session for good, even for a copied cookie.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, ValidationError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from patientapp.db import storage
from patientapp.domain import mfa, throttle
from patientapp.web import errors, tablet
from patientapp.web.context import client_network, clinic_name, clinic_settings, get_db, now
from patientapp.web.forms import length_limit

bp = Blueprint("auth", __name__, url_prefix="/staff")
errors.STAFF.register(bp)

ROLES = ("admin", "psychiatrist", "frontdesk")
ROLE_LABELS = {
    "admin": _l("Admin"),
    "psychiatrist": _l("Psychiatrist"),
    "frontdesk": _l("Front desk"),
}
MIN_PASSWORD = 10
MAX_EMAIL = 200
EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BAD_EMAIL = _l("Please enter an email address like name@example.org.")
DUPLICATE_EMAIL = _l("There is already an account with this email address.")
SESSION_KEY = "staff"
PENDING_KEY = "staff_pending"  # password right, second factor still to come
PENDING_MINUTES = 5
LOGIN_ERROR = _l(
    "That email and password don't match an active account, or the account "
    "is locked for a few minutes after too many tries."
)
_argon2 = PasswordHasher()
# Recovery codes carry 50 random bits, so OWASP's minimum argon2id settings (19 MiB, two
# passes) are plenty, and checking a typed code against all ten stays well under a second.
_argon2_recovery = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


# --- passwords ---------------------------------------------------------------------------


def hash_password(password: str) -> str:
    if current_app.config.get("PASSWORD_HASHER") == "fast":
        # Tests only: a deliberately cheap hash keeps hundreds of logins quick.
        return generate_password_hash(password, method="pbkdf2:sha256:1")
    return _argon2.hash(password)


def hash_recovery_code(code: str) -> str:
    if current_app.config.get("PASSWORD_HASHER") == "fast":
        return generate_password_hash(code, method="pbkdf2:sha256:1")
    return _argon2_recovery.hash(code)


def verify_password(stored: str, password: str) -> bool:
    if stored.startswith("pbkdf2:"):
        return check_password_hash(stored, password)
    try:
        return _argon2.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASH: dict[str, str] = {}


def _burn_time(password: str) -> None:
    """Verify against a dummy hash so unknown accounts take as long as known ones."""
    key = current_app.config.get("PASSWORD_HASHER", "argon2")
    if key not in _DUMMY_HASH:
        _DUMMY_HASH[key] = hash_password(secrets.token_hex(8))
    verify_password(_DUMMY_HASH[key], password)


# The 30,000 most common passwords of the leaked-password lists zxcvbn ships (xato.net).
COMMON_PASSWORDS = frozenset(FREQUENCY_LISTS["passwords"])
# zxcvbn's score 3: about 10^8 guesses or more, "safely unguessable" against an online
# attack even without the lockout, and slow against argon2 offline.
MIN_SCORE = 3
ZXCVBN_MAX = 72  # zxcvbn refuses longer input; the start carries any weakness
PERSONAL_MIN = 3  # shorter pieces of a name (e.g. "Li") are too common to refuse
COMMON_PASSWORD = _l(
    "This password is on a list of common passwords that attackers try first. "
    "Please choose another."
)
PERSONAL_PASSWORD = _l(
    "This password is built from your email address, your name or the clinic's name, "
    "which others can guess. Please choose another."
)
GUESSABLE_PASSWORD = _l(
    "This password is too easy to guess (like a pattern, a date or a common word with "
    "digits). A few unrelated words make a strong one."
)


def personal_words(*details: str) -> list[str]:
    """The pieces of an email address, a name or the clinic's name that a password must
    not be built from: each whole, the e-mail's local part and domain name, each word."""
    words: set[str] = set()
    for detail in details:
        detail = (detail or "").strip().casefold()
        if not detail:
            continue
        words.add(detail)
        local, _at, domain = detail.partition("@")
        words.add(local)
        words.update(re.split(r"[\W_]+", local))
        words.update(re.split(r"[\W_]+", domain.rsplit(".", 1)[0]))  # riverside of riverside.org
    return sorted(word for word in words if len(word) >= PERSONAL_MIN)


def password_problem(password: str, personal: tuple[str, ...] | list[str] = ()) -> str | None:
    """The password rules, in the current language; None when the password will do.

    At least MIN_PASSWORD characters, not one of the common passwords, not built from
    the person's own details (`personal`: email, name, clinic name), and a zxcvbn score of
    at least MIN_SCORE.
    """
    if len(password) < MIN_PASSWORD:
        return str(_l("Please use at least %(n)s characters.", n=MIN_PASSWORD))
    folded = password.casefold()
    if folded in COMMON_PASSWORDS:
        return str(COMMON_PASSWORD)
    words = personal_words(*personal)
    result = zxcvbn(password[:ZXCVBN_MAX], user_inputs=words)
    from_details = any(m.get("dictionary_name") == "user_inputs" for m in result["sequence"])
    if any(len(word) >= 4 and word in folded for word in words) or (
        from_details and result["score"] < MIN_SCORE
    ):
        return str(PERSONAL_PASSWORD)
    if result["score"] < MIN_SCORE:
        common = any(m.get("dictionary_name") == "passwords" for m in result["sequence"])
        return str(COMMON_PASSWORD if common else GUESSABLE_PASSWORD)
    return None


# --- accounts ----------------------------------------------------------------------------


def email_problem(email: str) -> str | None:
    """The one email rule, in the current language; None when the address will do."""
    if len(email) > MAX_EMAIL or not EMAIL_SHAPE.match(email):
        return str(BAD_EMAIL)
    return None


class AccountError(ValueError):
    """Why an account was not created: `reason` is "email", "duplicate" or "password",
    `field` the form field it belongs to, and the message is in the current language."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.field = "password" if reason == "password" else "email"


def email_rule(_form, field) -> None:
    """The email rule as a form validator, so a page shows every problem at once."""
    if field.errors:  # the length limit before it has already said what is wrong
        return
    problem = email_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


def password_rule(form, field) -> None:
    """The password rules as a form validator. The person's details come from the form's
    email and name fields, or from `form.account` (an account dict) set by the view."""
    account = getattr(form, "account", None) or {}
    details = [account.get("email", ""), account.get("display_name", "")]
    details += [form[name].data or "" for name in ("email", "display_name") if name in form]
    problem = password_problem(field.data or "", [*details, clinic_settings()["clinic_name"]])
    if problem:
        raise ValidationError(problem)


def check_new_email(db, email: str) -> None:
    """Raise AccountError unless `email` is well formed and no account has it yet."""
    problem = email_problem(email)
    if problem:
        raise AccountError("email", problem)
    if storage.user_by_email(db, email) is not None:
        raise AccountError("duplicate", str(DUPLICATE_EMAIL))


@dataclass(frozen=True)
class NewAccount:
    """An account that passed every rule, its password already hashed: ready to insert."""

    email: str
    display_name: str
    password_hash: str
    role: str


def checked_account(
    db, *, email: str, password: str, role: str, display_name: str = ""
) -> NewAccount:
    """Apply every rule and hash the password, writing nothing: the slow part (zxcvbn,
    argon2) runs before the write lock is taken, so no patient's save waits for it.
    Raises AccountError when the email or the password is refused."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    email = email.strip()
    check_new_email(db, email)
    problem = password_problem(password, [email, display_name, clinic_settings()["clinic_name"]])
    if problem:
        raise AccountError("password", problem)
    return NewAccount(email, display_name.strip(), hash_password(password), role)


def insert_account(db, account: NewAccount) -> int:
    """Insert a checked account (inside the caller's write, beside its audit entry) and
    return its id; AccountError if the address was added a moment ago."""
    try:
        return storage.create_user(
            db,
            email=account.email,
            display_name=account.display_name,
            password_hash=account.password_hash,
            role=account.role,
            now=now(),
        )
    except storage.INTEGRITY_ERRORS as exc:
        raise AccountError("duplicate", str(DUPLICATE_EMAIL)) from exc


def create_account(db, *, email: str, password: str, role: str, display_name: str = "") -> int:
    """Create a staff account and return its id: the setup link, the Users page and the
    create-user command all apply these rules, so every account meets them. Raises
    AccountError, writing nothing, when the email or the password is refused."""
    account = checked_account(
        db, email=email, password=password, role=role, display_name=display_name
    )
    return insert_account(db, account)


# --- sessions ----------------------------------------------------------------------------


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def _new_staff_session(db, user: dict) -> str:
    """A server-side session for `user`, written in the caller's transaction; its id goes
    into the cookie only once that has committed (_remember_session)."""
    session_id = secrets.token_urlsafe(32)
    storage.start_staff_session(db, _hash(session_id), user["id"], now())
    return session_id


def _remember_session(session_id: str) -> None:
    """Start a fresh cookie: the old content, CSRF secret included, is dropped."""
    session.clear()
    session[SESSION_KEY] = session_id
    session.permanent = False


def end_session() -> None:
    """End this browser's staff session on the server (inside the caller's write, with
    its audit entry); the cookie is cleared once that is saved (session.clear())."""
    session_id = session.get(SESSION_KEY)
    if session_id:
        storage.end_staff_session(get_db(), _hash(session_id), now())


def current_user(touch: bool = True) -> dict | None:
    """The logged-in staff member, enforcing idle and absolute timeouts."""
    session_id = session.get(SESSION_KEY)
    if not session_id:
        return None
    db, moment = get_db(), now()
    row = storage.staff_session(db, _hash(session_id))
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
            if not enrolling and not user["mfa_enrolled"] and mfa_required(user):
                if request.method == "GET" and not request.path.endswith(".json"):
                    return redirect(url_for("auth.mfa_setup"))
                abort(403)
            if roles and user["role"] not in roles:
                abort(404 if hide_as_404 else 403)
            g.user = user
            return view(*args, **kwargs)

        return wrapped

    return decorator


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
    return [(_lockout("signed-in", limit), _hash(session[SESSION_KEY]))]


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
    return next((_hash(n) for n in _device_nonces() if _device_ok(db, _hash(n), user["id"])), None)


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
    storage.add_trusted_device(db, _hash(nonce), user["id"], moment)
    return nonce


def _set_device_cookie(db, response, nonce: str) -> None:
    """Signed, HttpOnly, SameSite=Lax, Secure when configured, for /staff only: the new
    nonce first, then this browser's other accounts' that still count."""
    kept = [n for n in _device_nonces() if storage.trusted_device(db, _hash(n)) is not None]
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


# --- views -------------------------------------------------------------------------------

EMAIL_REQUIRED = DataRequired(message=_l("Please enter an email address."))
PASSWORD_REQUIRED = DataRequired(message=_l("Please enter a password."))


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[EMAIL_REQUIRED, length_limit(200)],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[PASSWORD_REQUIRED, length_limit(500)],
        render_kw={"autocomplete": "current-password"},
    )


class NewPasswordForm(FlaskForm):
    """A new password typed twice, long enough."""

    password = PasswordField(
        _l("Password"),
        validators=[PASSWORD_REQUIRED, length_limit(500), password_rule],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Password again"),
        validators=[
            PASSWORD_REQUIRED,
            EqualTo("password", message=_l("The two passwords are not the same.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class SetupForm(NewPasswordForm):
    email = EmailField(
        _l("Email"),
        validators=[EMAIL_REQUIRED, length_limit(MAX_EMAIL)],  # create_account checks the rest
        render_kw={"autocomplete": "username"},
    )
    display_name = StringField(
        _l("Your name as colleagues see it"),
        validators=[DataRequired(message=_l("Please enter a name.")), length_limit(80)],
    )


class CodeForm(FlaskForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(message=_l("Please enter the code.")), length_limit(40)],
        render_kw={
            "autocomplete": "one-time-code",
            "autocapitalize": "none",
            "spellcheck": "false",
        },
    )


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField(
        _l("Current password"),
        validators=[PASSWORD_REQUIRED, length_limit(500)],
        render_kw={"autocomplete": "current-password"},
    )


def _sign_in_writes(db, user: dict, claim: Claim, detail: str = "") -> tuple[str, str | None]:
    """In the caller's transaction: all a sign-in changes, with its audit entries. The
    session id and the device nonce to give the browser once it commits."""
    _succeeded(db, claim)
    session_id = _new_staff_session(db, user)
    key = user["email"].lower()
    if claim.device is None:
        # A stranger who got it right ends the count of wrong passwords; one signing in
        # on a trusted device leaves strangers' locks where they are.
        throttle.forget(db, "login-account", key)
    throttle.forget(db, MFA_LOCK_SCOPE, key)  # the next lock is the first again
    storage.audit(db, "login", now=now(), user_id=user["id"], actor=user["email"], detail=detail)
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
                storage.end_other_sessions(db, user["id"], _hash(session[SESSION_KEY]), now())
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
            storage.end_staff_session(get_db(), _hash(session_id), now())
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


def _matching_recovery_code(db, user: dict, code: str) -> int | None:
    """The id of the account's unused recovery code that was typed, if any."""
    typed = mfa.normalise(code)
    if len(typed) != mfa.RECOVERY_LENGTH:
        return None
    for row in storage.unused_recovery_codes(db, user["id"]):
        if verify_password(row["code_hash"], typed):
            return row["id"]
    return None


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
        storage.end_other_sessions(db, user["id"], _hash(session[SESSION_KEY]), now())
        for scope in (MFA_SCOPE, MFA_LOCK_SCOPE):  # a new app: strangers' count starts again
            throttle.forget(db, scope, user["email"].lower())
        audit("mfa_enrolled")
    return render_template("staff/mfa.html", codes=codes)


# --- first admin -------------------------------------------------------------------------

SETUP_SETTING = "setup_token_hash"


def issue_setup_token(db) -> str | None:
    """A one-time link to create the first admin, while no account exists."""
    if storage.count_users(db):
        return None
    token = secrets.token_urlsafe(32)
    storage.save_settings(db, {SETUP_SETTING: _hash(token)})
    return token


@bp.route("/setup/<token:token>", methods=["GET", "POST"])
def setup(token: str):
    db = get_db()
    expected = storage.get_settings(db).get(SETUP_SETTING)
    if (
        storage.count_users(db)
        or not expected
        or not secrets.compare_digest(expected, _hash(token))
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
        user_id = insert_account(db, account)
        storage.delete_setting(db, SETUP_SETTING)
    return user_id

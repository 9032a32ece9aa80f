"""Configuration: safe defaults, environment overrides, a generated secret key."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

VERSION = "0.1.0"
ENV_PREFIX = "PATIENTAPP_"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}

DEFAULTS = {
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    "MAX_FORM_PARTS": 200,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "SESSION_COOKIE_NAME": "patientapp_session",
    # The stylesheet and scripts are linked with ?v=<version>, so a day of caching is
    # safe across upgrades and spares weak waiting-room Wi-Fi a download per page.
    "SEND_FILE_MAX_AGE_DEFAULT": 86400,
    # The patient's CSRF token lives as long as the session cookie, which ends with the
    # invitation, on submit or when idle; a time limit would only expire slow readers.
    "WTF_CSRF_TIME_LIMIT": None,
    # Every page says Referrer-Policy: no-referrer (a patient's link must never travel in a
    # Referer), so browsers send no Referer and "Origin: null" with a form; Flask-WTF's
    # HTTPS check, which wants a same-origin Referer, would refuse every form behind the
    # HTTPS proxy. The form's token, kept in the session, the session cookie's
    # SameSite=Lax and the Sec-Fetch-Site check (patientapp/__init__.py) are the CSRF
    # protection (tests/web/test_other_sites.py, tests/ops/test_nginx.py).
    "WTF_CSRF_SSL_STRICT": False,
    "WTF_I18N_ENABLED": True,
    "BABEL_DEFAULT_LOCALE": "en",
    "PATIENT_IDLE_MINUTES": 15,
    "STAFF_IDLE_MINUTES": 15,
    "STAFF_ABSOLUTE_HOURS": 12,
    "CODE_FAILURES_PER_CLIENT": 5,
    "CODE_FAILURES_PER_ADDRESS": 30,
    "CODE_FAILURES_GLOBAL": 300,
    # Once the clinic-wide window is full, codes are looked up only from an address where
    # a visit was opened in the last CODE_KNOWN_ADDRESS_HOURS (the waiting room's), and at
    # most this many more per window: lookups clinic-wide stay bounded whatever the number
    # of addresses (SECURITY.md, "Someone guessing or flooding codes").
    "CODE_FAILURES_RESERVED": 100,
    "CODE_KNOWN_ADDRESS_HOURS": 24,
    "CODE_FAILURE_WINDOW_MINUTES": 15,
    "LOGIN_FAILURES_PER_ACCOUNT": 5,
    "LOGIN_FAILURES_PER_CLIENT": 20,
    "LOGIN_LOCKOUT_MINUTES": 15,
    # A browser that signed in before (its device cookie) is not held by a lock on
    # strangers; its own wrong passwords or codes end its trust at this many.
    "LOGIN_FAILURES_PER_DEVICE": 5,
    "DEVICE_COOKIE_DAYS": 30,
    # Wrong app codes from strangers (no device cookie) per account: this many within
    # MFA_FAILURE_WINDOW_HOURS lock them out of app codes for MFA_LOCK_HOURS, doubled for
    # each further lock before a successful sign-in, up to MFA_LOCK_MAX_HOURS. At most 3
    # tries in any 24 hours, each matching 3 codes: 9e-6 a day (SECURITY.md).
    "MFA_FAILURES_PER_LOCK": 3,
    "MFA_FAILURE_WINDOW_HOURS": 24,
    "MFA_LOCK_HOURS": 24,
    "MFA_LOCK_MAX_HOURS": 720,
    # Audit entries one client may cause without signing in (a failed sign-in with the
    # provider, a refused EHR launch) per 15 minutes; then 429 and nothing written.
    "UNSIGNED_AUDIT_PER_CLIENT": 30,
    # Requests one integration token may make per minute to the read-only FHIR API.
    "API_REQUESTS_PER_MINUTE": 120,
    # How long a save waits for another request's write before the patient is asked to retry.
    "DATABASE_BUSY_TIMEOUT_MS": 10_000,
    # How long GET /healthz waits for the write lock before it answers 503 "locked".
    "HEALTH_TIMEOUT_MS": 1_000,
    # Each process holds <database>.in-use while it runs, so encrypt-db and rekey-db can
    # tell a running server (even an idle one) and refuse (storage.used_alone).
    "HOLD_DATABASE_IN_USE": True,
    "BASE_URL": "",
    "PASSWORD_HASHER": "argon2",
    # Roles that must sign in with a second factor (a clinic setting adds front desk).
    "MFA_REQUIRED_ROLES": ("admin", "psychiatrist"),
    # waitress, set on purpose: one client holding many idle connections must not stall
    # every patient, so idle connections close soon and the limit leaves room.
    "TRUSTED_PROXY": "",
    "CHANNEL_TIMEOUT": 30,
    # 0: as many as the process's file-descriptor limit leaves room for (connection_limit).
    "CONNECTION_LIMIT": 0,
    "BACKLOG": 2048,
    "CLEANUP_INTERVAL": 10,
    # Continuous copies (domain/copies.py): off until COPY_DIR names a folder.
    "COPY_DIR": "",
    "COPY_INTERVAL_SECONDS": 300,
    "COPY_KEEP": 48,
    "COPY_COMMAND": "",
    # Where serve looks for a Litestream set-up it must refuse on an encrypted database.
    "LITESTREAM_CONFIG": "/etc/litestream.yml",
    # Staff sign-in with the clinic's OpenID Provider (auth/provider.py): on once an issuer
    # and a client id are set. The secret is read from OIDC_CLIENT_SECRET_FILE when given
    # (kept out of the environment), else from OIDC_CLIENT_SECRET. The button says
    # "Sign in with <OIDC_NAME>". Who may still use a password, whether a verified e-mail
    # links an account, and whether the provider's second factor counts are Settings.
    "OIDC_ISSUER": "",
    "OIDC_CLIENT_ID": "",
    "OIDC_CLIENT_SECRET": "",
    "OIDC_CLIENT_SECRET_FILE": "",
    "OIDC_NAME": "",
    # The `acr` values that mean the provider asked for a second factor (besides an `amr`
    # holding "mfa"), space-separated; e.g. a Keycloak level-of-assurance name.
    "OIDC_MFA_ACR_VALUES": "",
    # How long a request to the provider (or an EHR) may take before it counts as down.
    "OIDC_TIMEOUT_SECONDS": 5,
    # SMART EHR launch of the one page (staff/smart.py): the EHRs' FHIR base URLs it takes
    # launches from (space-separated, exactly as the EHR sends `iss`), and this app's
    # client registered there (confidential, symmetric).
    "SMART_ISSUERS": "",
    "SMART_CLIENT_ID": "",
    "SMART_CLIENT_SECRET": "",
    "SMART_CLIENT_SECRET_FILE": "",
    # Origins allowed to show staff pages in a frame (an EHR that embeds the app), space-
    # separated; empty: none (frame-ancestors 'none'), and the launch opens a new window.
    "FRAME_ANCESTORS": "",
}

# The headers a trusted reverse proxy sets; from anyone else they are dropped.
PROXY_HEADERS = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})

# Environment variables read on start; the value is converted like the default.
ENV_KEYS = (
    "DATABASE",
    "SECRET_KEY",
    "BASE_URL",
    "SESSION_COOKIE_SECURE",
    "PATIENT_IDLE_MINUTES",
    "STAFF_IDLE_MINUTES",
    "STAFF_ABSOLUTE_HOURS",
    "TRUSTED_PROXY",
    "CHANNEL_TIMEOUT",
    "CONNECTION_LIMIT",
    "BACKLOG",
    "CLEANUP_INTERVAL",
    "API_REQUESTS_PER_MINUTE",
    "COPY_DIR",
    "COPY_INTERVAL_SECONDS",
    "COPY_KEEP",
    "COPY_COMMAND",
    "LITESTREAM_CONFIG",
    "OIDC_ISSUER",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "OIDC_CLIENT_SECRET_FILE",
    "OIDC_NAME",
    "OIDC_MFA_ACR_VALUES",
    "OIDC_TIMEOUT_SECONDS",
    "SMART_ISSUERS",
    "SMART_CLIENT_ID",
    "SMART_CLIENT_SECRET",
    "SMART_CLIENT_SECRET_FILE",
    "FRAME_ANCESTORS",
)


def _convert(value: str, default):
    if isinstance(default, bool):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(value)
    return value


# Where `serve` listens: also the address links printed at the terminal point to
# (flask demo, flask invite), so `make demo PORT=8080` prints links on 8080.
SERVE_ENV_KEYS = {"HOST": ("SERVE_HOST", str), "PORT": ("SERVE_PORT", int)}


def from_environment(environ=os.environ) -> dict:
    """Settings given as PATIENTAPP_* environment variables."""
    found = {}
    for key in ENV_KEYS:
        raw = environ.get(ENV_PREFIX + key)
        if raw not in (None, ""):
            found[key] = _convert(raw, DEFAULTS.get(key, ""))
    for name, (key, kind) in SERVE_ENV_KEYS.items():
        raw = environ.get(ENV_PREFIX + name, "").strip()
        if raw and (kind is str or (raw.isascii() and raw.isdigit())):
            found[key] = kind(raw)
    return found


def languages(environ=os.environ) -> list[str] | None:
    """The patient languages named in PATIENTAPP_LANGUAGES (comma-separated), or None to
    offer every shipped one."""
    raw = environ.get(ENV_PREFIX + "LANGUAGES", "")
    return [code.strip() for code in raw.split(",") if code.strip()] or None


def default_language(environ=os.environ) -> str:
    """The language shown before a patient chooses: PATIENTAPP_DEFAULT_LANGUAGE, or English."""
    return environ.get(ENV_PREFIX + "DEFAULT_LANGUAGE", "en")


def instance_path(environ=os.environ) -> Path:
    """The folder holding the database and the generated secret key (created mode 0700)."""
    return Path(environ.get(ENV_PREFIX + "INSTANCE", "instance")).resolve()


def database_key(instance: Path, environ=os.environ, name: str = "DB_KEY") -> str | None:
    """The SQLCipher key from PATIENTAPP_DB_KEY, or the file named by PATIENTAPP_DB_KEY_FILE
    (never inside the instance folder: a stolen copy of it must not carry its own key).
    None means a plain database. ``name`` NEW_DB_KEY reads the key rekey-db changes to."""
    from patientapp.db.storage import StorageError

    key = environ.get(ENV_PREFIX + name, "")
    file_name = environ.get(ENV_PREFIX + name + "_FILE", "")
    if key and file_name:
        raise StorageError(f"Set {ENV_PREFIX}{name} or {ENV_PREFIX}{name}_FILE, not both.")
    if file_name:
        key = key_from_file(Path(file_name), instance)
    if "\x00" in key:
        raise StorageError(f"The database key in {ENV_PREFIX}{name} holds a NUL character.")
    return key.strip() or None


def key_from_file(path: Path, instance: Path) -> str:
    """A key file's first line; refused inside the instance folder, missing or empty."""
    from patientapp.db.storage import StorageError

    path = path.expanduser().resolve()
    if path.is_relative_to(instance.resolve()):
        raise StorageError(
            f"The database key file {path} is inside the instance folder {instance}: keep "
            "it elsewhere (e.g. /etc/patientapp/db_key, mode 0400), or a copy of the folder "
            "would carry its own key."
        )
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise StorageError(f"The database key file {path} cannot be read: {error}") from None
    if not key:
        raise StorageError(f"The database key file {path} is empty.")
    return key


def load_or_create_secret(instance: Path) -> str:
    """Read the secret key kept under instance/, creating it (mode 0600) on first start."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key


def server_options(config) -> dict:
    """The waitress settings beyond host, port and threads, from the app's config.

    The client's address, scheme and host come from X-Forwarded-* only when the
    connection comes from PATIENTAPP_TRUSTED_PROXY; from any other peer waitress drops
    those headers, so the login lockout counts the real client.
    """
    options = {
        "channel_timeout": config["CHANNEL_TIMEOUT"],
        "connection_limit": connection_limit(config["CONNECTION_LIMIT"], file_limit()),
        # poll(), not select(): select() cannot watch a descriptor numbered 1024 or more,
        # so past about a thousand open connections waitress's loop would fail.
        "asyncore_use_poll": True,
        "backlog": config["BACKLOG"],
        "cleanup_interval": config["CLEANUP_INTERVAL"],
        "clear_untrusted_proxy_headers": True,
    }
    if config["TRUSTED_PROXY"]:
        options.update(
            trusted_proxy=config["TRUSTED_PROXY"],
            trusted_proxy_count=1,
            trusted_proxy_headers=set(PROXY_HEADERS),
        )
    return options


FILES_RESERVED = 256  # descriptors kept for the database, its WAL and locks, logs, mail
AUTO_CONNECTION_CAP = 10_000  # open connections per process when the limit is automatic


def file_limit() -> int | None:
    """This process's limit on open files (RLIMIT_NOFILE, soft), or None where unknown."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_file_limit(wanted: int = 65_536) -> int | None:
    """Raise the soft limit on open files towards the hard one (what an unprivileged
    process may do; the systemd unit raises the hard one with LimitNOFILE); the new soft
    limit. Each kept-open phone connection is one descriptor."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # pragma: no cover - a sandbox refusing it
            log.warning("could not raise the open-file limit from %d to %d", soft, target)
    return file_limit()


def connection_limit(configured: int, files: int | None) -> int:
    """Open connections one server process accepts: the configured number, or with 0 as
    many as the file limit leaves room for (at most AUTO_CONNECTION_CAP), never more than
    that room: waitress accepting past it would fail with EMFILE instead of letting new
    phones wait in the listen backlog."""
    room = None if files is None else max(64, files - FILES_RESERVED)
    if configured <= 0:
        return min(AUTO_CONNECTION_CAP, room) if room is not None else 1_000
    if room is not None and configured > room:
        log.warning(
            "PATIENTAPP_CONNECTION_LIMIT %d is more than the open-file limit %d allows; "
            "using %d (raise LimitNOFILE or ulimit -n)",
            configured,
            files,
            room,
        )
        return room
    return configured


def base_url_problem(config, host: str) -> str | None:
    """Why `serve` must not start without PATIENTAPP_BASE_URL, or None."""
    if config.get("BASE_URL"):
        return None
    if not is_loopback(host) or config.get("TRUSTED_PROXY"):
        return (
            "Set PATIENTAPP_BASE_URL to the address patients open (e.g. "
            "https://reflect.clinic.example): serving other machines without it, "
            "invitation links would have to come from the Host header anyone can forge."
        )
    return None


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_unsafe(host: str, debug: bool) -> bool:
    """Warn loudly when the debugger could be reached from another machine."""
    if debug and not is_loopback(host):
        message = (
            "\n" + "!" * 72 + "\n"
            f"!! DEBUG MODE ON A NON-LOOPBACK HOST ({host}).\n"
            "!! Anyone who can reach this address can run code on this machine and\n"
            "!! read every patient's answers. Never do this outside development.\n" + "!" * 72
        )
        log.warning(message)
        print(message, flush=True)
        return True
    return False

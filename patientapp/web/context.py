"""Per-request plumbing shared by the blueprints and commands: database handle, clock,
clinic settings, the public address."""

from __future__ import annotations

import ipaddress
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache

import flask_wtf.csrf
from flask import abort, current_app, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import lazy_gettext as _l
from itsdangerous import URLSafeTimedSerializer
from markupsafe import Markup, escape
from werkzeug.routing import BaseConverter, IntegerConverter

from patientapp import config
from patientapp.db import storage
from patientapp.domain import backups, retention
from patientapp.i18n import listed
from patientapp.questionnaire import display, timing

SETTING_DEFAULTS = {
    "clinic_name": "",
    "crisis_text": "",  # before crisis_texts: the text for the default language
    "crisis_texts": None,  # {language code: text}; None until first saved
    "crisis_phone_numbers": "",
    "languages": [],
    "invite_extra_days": 0,
    # The standard measures a new invitation includes unless staff untick them (ids of
    # instruments in definition.toml's [measures], such as "phq9"); empty: none.
    "measures": [],
    "patient_idle_minutes": None,
    "retention_days": retention.DEFAULT_DAYS,
    "mfa_frontdesk": False,  # front desk, too, signs in with a code from an app
    # Sign-in with the clinic's OpenID Provider (when PATIENTAPP_OIDC_ISSUER is set):
    # "everyone" may still use a password, or "admins" only (the way in when the provider
    # is down); a verified e-mail from the provider links the account it matches at a
    # first sign-in; the provider's own second factor (its amr/acr) replaces ours.
    "local_sign_in": "everyone",
    "provider_link_by_email": False,
    "provider_trust_mfa": False,
    "time_zone": "",  # an IANA name such as "America/Chicago"; empty: the server's zone
    # When someone is at the front desk (domain/staffed_hours.py): seven days, Monday
    # first, each null or ["HH:MM", "HH:MM"]; empty: always staffed.
    "staffed_hours": [],
    "references_are_chart_numbers": False,  # exports then name the patient by it
    # The clinic's MRN system (a URI) for those chart numbers in FHIR; empty: none given.
    "chart_number_system": "",
    # The safety loop: an alert unacknowledged this long is escalated (every staff page,
    # the visit's psychiatrist and every admin; one e-mail when outgoing mail is set).
    "escalate_after_minutes": 5,
    "alert_sound": False,  # a short tone on staff pages when a new alert arrives
    # Settings warns when the last backup or verified restore is older than this.
    "backup_overdue_days": backups.DEFAULT_OVERDUE_DAYS,
    # Outgoing mail (the clinic's own relay); the password is never shown again.
    "smtp_host": "",
    "smtp_port": 587,
    "smtp_security": "starttls",  # "starttls", "tls" (implicit, port 465) or "none"
    "smtp_user": "",
    "smtp_password": "",
    "mail_from": "",
    "oncall_address": "",
    # Invitations by e-mail and text (the Invitations by e-mail and text page).
    # The name messages to patients give the clinic (empty: the clinic's name): a message
    # can be read on a locked phone, where "Riverside Psychiatry" says what care it is.
    "message_clinic_name": "",
    "reminder_hours_before": 24,
    "quiet_from": "21:00",
    "quiet_until": "08:00",
    "sms_mode": "none",  # "none", "email" (a gateway address) or "http"
    "sms_email_address": "",
    "sms_http_url": "",
    "sms_http_auth": "",  # a header line with a secret, never shown again
    "sms_http_content_type": "form",
    "sms_http_body": "",
    "sms_from": "",
}

DEFAULT_CLINIC_NAME = _l("Your clinic")
DEFAULT_CRISIS_TEXT = _l(
    "If you feel unsafe right now, or you might hurt yourself, tell the front desk "
    "right away or call your local emergency number."
)
DEFAULT_CRISIS_TEXT_CLOSED = _l(
    "If you feel unsafe right now, or you might hurt yourself, call your local emergency "
    "number or a crisis line now."
)


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: ASCII digits only, and no larger than a SQLite row id
    can be, so /visits/99999999999999999999/... is a 404 rather than an overflow."""

    regex = r"[0-9]{1,19}"

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


class TokenConverter(BaseConverter):
    """`<token:...>`: a link secret is URL-safe base64 (secrets.token_urlsafe), so
    anything else, /v/é for one, is a 404 before any lookup."""

    regex = r"[A-Za-z0-9_-]{1,128}"


_thread = threading.local()
LOOPBACK_HOST = re.compile(r"(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d{1,5})?", re.IGNORECASE)


def get_db():
    """The request's database connection.

    Each server thread keeps one connection open between requests: opening a file and
    setting the pragmas again on every request costs more than serving a page.
    """
    if "db" not in g:
        path = current_app.config["DATABASE"]
        timeout = current_app.config["DATABASE_BUSY_TIMEOUT_MS"]
        key = current_app.config.get("DATABASE_KEY")
        kept = getattr(_thread, "db", None)
        if kept is None or kept[0] != (path, timeout, key):
            if kept is not None:
                kept[1].close()
            kept = ((path, timeout, key), storage.connect(path, timeout, key))
            _thread.db = kept
        g.db = kept[1]
        storage.use_zone(clinic_zone())  # times are written and read in the clinic's zone
    return g.db


def close_thread_db() -> None:
    """Close the connection this thread keeps (at shutdown, and after each test)."""
    kept = getattr(_thread, "db", None)
    if kept is not None:
        kept[1].close()
        del _thread.db


def close_db(_exc=None) -> None:
    """Leave the thread's connection clean for its next request."""
    db = g.pop("db", None)
    if db is not None and db.conn.in_transaction:
        db.rollback()
    storage.use_zone(None)


def now() -> datetime:
    """The clinic's current local time (naive, in the Settings time zone); tests inject a
    clock through config["CLOCK"]."""
    clock = current_app.config.get("CLOCK")
    if clock:
        return clock()
    # `fold` survives dropping the zone, so the hour that repeats in autumn is stored right.
    return datetime.now(storage.current_zone()).replace(tzinfo=None, microsecond=0)


def base_url() -> str:
    """The address links are built on, without a trailing slash: PATIENTAPP_BASE_URL when
    configured; else, on a page, the address the request came in on if that is loopback;
    else the address `serve` listens on.

    The Host header is the client's to write: a forged one must never reach an
    invitation link, its QR code or the printed slip.
    """
    configured = current_app.config.get("BASE_URL")
    if configured:
        return configured.rstrip("/")
    if has_request_context() and _host_trusted(request.host):
        return request.url_root.rstrip("/")
    host = current_app.config.get("SERVE_HOST", "127.0.0.1")
    port = current_app.config.get("SERVE_PORT", 8000)
    return f"http://{host}:{port}"


def configured_base_url() -> str:
    """PATIENTAPP_BASE_URL without a trailing slash, or "" when none is configured: what
    names things that must never follow a request (a FHIR identifier's system)."""
    return (current_app.config.get("BASE_URL") or "").rstrip("/")


def _host_trusted(host: str) -> bool:
    """A loopback host only ever links to the machine the browser itself is on."""
    return bool(LOOPBACK_HOST.fullmatch(host))


def client_network(address: str | None) -> str:
    """What a per-address limit counts (codes, staff sign-ins): an IPv4 address, or an IPv6
    address's /64, which one phone, home or waiting room holds whole (so its 2^64
    addresses are one client)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "-"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def measure_choices() -> list[tuple[str, str]]:
    """The standard measures an invitation may include: (id, name) such as ("phq9",
    "PHQ-9"), in the order they are asked. Names are the instruments' own, in every
    language."""
    from patientapp.questionnaire.model import default

    return [(i.id, i.name) for i in default().instruments]


def measure_lang(item) -> Markup:
    """` lang="en"` on a measure's words shown in its original language on a page in
    another (the patient switched after starting); nothing otherwise. `item` may be an
    item or its id (a form field's name)."""
    if isinstance(item, str):
        from patientapp.questionnaire.model import default

        item = default().items.get(item)
        if item is None:
            return Markup("")
    language = display.language_of(item)
    return Markup(' lang="{}" dir="ltr"').format(language) if language else Markup("")


def clinic_settings() -> dict:
    """Clinic settings from the database over their defaults, read once per request."""
    if "clinic_settings" not in g:
        merged = dict(SETTING_DEFAULTS)
        merged.update(storage.get_settings(get_db()))
        if merged["patient_idle_minutes"] is None:
            merged["patient_idle_minutes"] = current_app.config["PATIENT_IDLE_MINUTES"]
        g.clinic_settings = merged
    return g.clinic_settings


zone_named = storage.zone_named


def clinic_zone() -> tzinfo | None:
    """The clinic's time zone from Settings; None means the server's own local zone."""
    return zone_named(clinic_settings()["time_zone"])


def aware(moment: datetime) -> datetime:
    """A local time from now() or a stored time, with the clinic's offset."""
    zone = clinic_zone()
    return moment.replace(tzinfo=zone) if zone else moment.astimezone()


def clinic_name() -> str:
    return clinic_settings()["clinic_name"] or str(DEFAULT_CLINIC_NAME)


@dataclass(frozen=True)
class CrisisText:
    """What a patient reads about getting help now. ``own`` is text the clinic typed for
    this language; otherwise ``text`` is the translated default and ``numbers`` the
    clinic's phone numbers (typed by staff, so shown with dir="auto")."""

    text: str
    own: bool
    numbers: str = ""
    numbers_lang: str = ""  # the numbers' language tag when it is not the page's


def crisis_texts() -> dict[str, str]:
    """The clinic's own crisis text per language. Before texts were set per language, the
    one text stored was written for the clinic's default language."""
    settings = clinic_settings()
    if settings["crisis_texts"] is not None:
        return {code: text for code, text in settings["crisis_texts"].items() if text}
    legacy = settings["crisis_text"]
    return {current_app.config["DEFAULT_LANGUAGE"]: legacy} if legacy else {}


def crisis_text(language: str, closed: bool = False) -> CrisisText:
    """The crisis text in this language: the clinic's own, or the translated default
    plus the phone numbers, never another language's sentences. `closed`: outside the
    staffed hours, where the default must not send anyone to an empty front desk."""
    own = crisis_texts().get(language)
    if own:
        return CrisisText(own, own=True)
    default = DEFAULT_CRISIS_TEXT_CLOSED if closed else DEFAULT_CRISIS_TEXT
    numbers = clinic_settings()["crisis_phone_numbers"]
    return CrisisText(
        str(default), own=False, numbers=numbers, numbers_lang=_typed_in(numbers, language)
    )


def _typed_in(numbers: str, language: str) -> str:
    """The language tag of the crisis numbers on a page in another language: their names
    ("Crisis line 988", "Samaritans") are the clinic's own, typed in its default language,
    and a screen reader speaking the page's language would say them wrong. Digits alone
    take the page's language, so they are read in the patient's."""
    typed = current_app.config["DEFAULT_LANGUAGE"]
    if typed == language or not any(ch.isalpha() for ch in numbers):
        return ""
    return typed.replace("_", "-")  # a BCP 47 tag, as <html lang> has it


# A phone number in text staff typed: digits with spaces, dashes, dots or parentheses
# between them and an optional leading +, not inside a word or a longer number. Only a
# run of 3 to 15 digits (E.164's longest) is a number; digits next to a slash are not
# ("24/7", a date): "911 24/7" links 911 alone.
PHONE_NUMBER = re.compile(r"(?<![\w+/])\+?\(?\d(?:[ .()-]*\d)*(?![\w/])")
PHONE_DIGITS = (3, 15)


def tel_links(text: str) -> Markup:
    """Staff-typed text, escaped, with each phone number in it a tap-to-call link. The
    link is kept left to right (dir="ltr") inside right-to-left text such as Arabic."""
    parts, end = [], 0
    for match in PHONE_NUMBER.finditer(text):
        start, number = match.start(), match.group()
        if number.startswith("(") and ")" not in number:
            start, number = start + 1, number[1:]  # "(call 988)": the bracket is text
        digits = "".join(str(unicodedata.decimal(c)) for c in number if c.isdecimal())
        if not PHONE_DIGITS[0] <= len(digits) <= PHONE_DIGITS[1]:
            continue
        target = "tel:" + ("+" if number.startswith("+") else "") + digits
        parts.append(escape(text[end:start]))
        parts.append(Markup('<a class="tel" href="{}" dir="ltr">{}</a>').format(target, number))
        end = match.end()
    parts.append(escape(text[end:]))
    return Markup("").join(parts)


def _text_only(value) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def refuse_odd_json() -> None:
    """Flask-WTF reads a JSON body as the form: every value must then be text (or a list
    of texts, as repeated fields are), never a number, object or null that a form field
    would keep as it is. Anything else is a 400."""
    if request.method != "GET" and request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not all(_text_only(v) for v in body.values()):
            abort(400)


# --- signing: one serializer per key, not one per request ---------------------------------


class KeptSerializerSession(SecureCookieSessionInterface):
    """Flask's signed session cookie, its serializer made once per secret key (and its
    fallbacks) instead of on every request: making one costs a test serialisation."""

    def __init__(self):
        self._kept: dict[tuple, URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        kept = self._kept.get(keys)
        if kept is None:
            kept = super().get_signing_serializer(app)
            if len(self._kept) >= 8:  # keys change only when an operator rotates them
                self._kept.clear()
            self._kept[keys] = kept
        return kept


@lru_cache(maxsize=8)
def kept_csrf_serializer(secret_key, salt: str) -> URLSafeTimedSerializer:
    """Flask-WTF makes a serializer for every CSRF token it makes or checks; this gives
    it the one already made for that key (a serializer keeps no state between calls)."""
    return URLSafeTimedSerializer(secret_key, salt=salt)


def _csrf_serializer(secret_key, salt: str = "wtf-csrf-token") -> URLSafeTimedSerializer:
    if isinstance(secret_key, list):  # not hashable; Flask-WTF passes one key
        return URLSafeTimedSerializer(secret_key, salt=salt)
    return kept_csrf_serializer(secret_key, salt)


def init_app(app) -> None:
    # Made when an app is made, not when this module is imported: generate_csrf and
    # validate_csrf look the class up in their module on every call, so from here on they
    # get the kept one. (Idempotent: every app shares the same cache by key.)
    flask_wtf.csrf.URLSafeTimedSerializer = _csrf_serializer
    app.session_interface = KeptSerializerSession()
    app.teardown_appcontext(close_db)
    app.before_request(refuse_odd_json)
    app.jinja_env.globals.update(
        clinic_name=clinic_name, crisis_text=crisis_text, app_version=config.VERSION
    )
    app.jinja_env.globals["promised_minutes"] = timing.promised_minutes  # minutes.json
    # A question's words: ours translated, a standard measure's from its official text.
    app.jinja_env.globals.update(
        item_prompt=display.prompt,
        item_intro=display.intro,
        measure_stem=display.stem,
        measure_lang=measure_lang,
    )
    app.jinja_env.filters["tel_links"] = tel_links
    app.jinja_env.filters["listed"] = listed  # chosen answers, joined the language's way

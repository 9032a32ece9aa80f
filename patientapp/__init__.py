"""Pre-visit reflection: a self-hosted app for psychiatric medication visits."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from flask import Flask, Response, request
from flask_compress import Compress
from flask_wtf.csrf import CSRFError, CSRFProtect

from patientapp import cli as commands
from patientapp import config as config_module
from patientapp import i18n
from patientapp.admin import views as admin
from patientapp.api import views as api
from patientapp.auth import provider
from patientapp.auth import views as auth
from patientapp.db import storage
from patientapp.patient import views as patient
from patientapp.questionnaire import model as questionnaire
from patientapp.staff import report as staff_report  # noqa: F401 - its routes join staff.bp
from patientapp.staff import smart
from patientapp.staff import views as staff
from patientapp.summary.rules import check_references
from patientapp.web import context as web
from patientapp.web import errors, health

__version__ = config_module.VERSION

csrf = CSRFProtect()
compress = Compress()
PACKAGE_DIR = Path(__file__).parent


def _resource_dir(name: str) -> str:
    """templates/ and translations/ sit beside the package in the source tree and
    inside it once installed from a wheel."""
    inside = PACKAGE_DIR / name
    return str(inside if inside.is_dir() else PACKAGE_DIR.parent / name)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: configuration, database, languages, blueprints."""
    instance = config_module.instance_path()
    app = Flask(
        __name__,
        instance_path=str(instance),
        instance_relative_config=True,
        template_folder=_resource_dir("templates"),
    )
    app.url_map.converters["int"] = web.RowIdConverter
    app.url_map.converters["token"] = web.TokenConverter
    app.config.from_mapping(config_module.DEFAULTS)
    app.config["DATABASE"] = str(instance / "patientapp.db")
    app.config.update(config_module.from_environment())
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = config_module.load_or_create_secret(instance)
    app.config.setdefault("DATABASE_KEY", config_module.database_key(instance))
    app.config.setdefault(
        "OFFERED_LANGUAGES", config_module.languages() or i18n.available_languages()
    )
    app.config.setdefault("DEFAULT_LANGUAGE", config_module.default_language())

    _check_definition()
    if app.config["HOLD_DATABASE_IN_USE"]:
        storage.hold_in_use(app.config["DATABASE"])
    try:
        storage.initialise(app.config["DATABASE"], app.config["DATABASE_KEY"])
    except storage.NotEncrypted:
        if "encrypt-db" not in sys.argv[1:]:  # the one command that fixes it must start
            raise
    web.init_app(app)
    # First registered, so it runs after every other after_request hook: on the final body.
    _add_compression(app)
    i18n.init_app(app)
    csrf.init_app(app)
    _refuse_other_sites(app)
    _register_blueprints(app)
    errors.init_app(app)
    _add_security_headers(app)
    _warn_on_debug_host(app)
    return app


def _refuse_other_sites(app: Flask) -> None:
    """A form sent from another site, or from a sibling subdomain, is refused like a form
    without its token. Browsers say where a request comes from in `Sec-Fetch-Site`,
    whatever the Referrer-Policy (which keeps the Referer from ever being sent, so
    Flask-WTF's Referer check is off: config.py). `SameSite=Lax` keeps the session
    cookie from another site's forms, not from a sibling subdomain's ("same-site"),
    which could also plant a session cookie of its own for the whole domain. A client
    that sends no such header (not a browser) still needs the token."""

    @app.before_request
    def refuse_other_sites():
        if request.method in ("GET", "HEAD", "OPTIONS") or request.blueprint == "api":
            return
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise CSRFError("The form came from another site.")


def _check_definition() -> None:
    problems = check_references(questionnaire.default())
    if problems:
        raise questionnaire.DefinitionError("; ".join(problems))


def _register_blueprints(app: Flask) -> None:
    app.register_blueprint(patient.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(smart.bp)  # the one page opened from the EHR (SMART launch)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)  # GET /healthz for monitors: no session, no audit
    # The API reads only a bearer token, never a cookie: no request can ride on a
    # signed-in browser, so there is nothing for a CSRF token to protect.
    csrf.exempt(api.bp)
    commands.init_app(app)


def _add_security_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response):
        headers = response.headers
        if request.endpoint != "static":
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        # A form may lead to the clinic's sign-in service (its sign-in button, and signing
        # out, which ends its session too): Chromium applies form-action to the redirects.
        forms = " ".join(filter(None, ("'self'", provider.origin())))
        # The one page (and what leads to it from the EHR) may sit in a frame of the
        # origins a clinic allows; no other page ever: not the sign-in, the second factor,
        # an account's or admin's page, nor any patient page.
        framers = _frame_ancestors(app) if request.endpoint in FRAMEABLE else ""
        ancestors = framers or "'none'"
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            f"form-action {forms}; frame-ancestors {ancestors}; base-uri 'none'",
        )
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        if not framers:
            headers["X-Frame-Options"] = "DENY"
        return response


# What an EHR that embeds the app may show in its frame (PATIENTAPP_FRAME_ANCESTORS).
FRAMEABLE = frozenset(
    {
        "staff.summary_page",
        "staff.invitation",
        "smart.launch",
        "smart.authorize",
        "smart.callback",
    }
)
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def _frame_ancestors(app: Flask) -> str:
    """FRAME_ANCESTORS' well-formed origins (scheme, host, port), space-separated."""
    given = (app.config.get("FRAME_ANCESTORS") or "").split()
    return " ".join(origin for origin in given if ORIGIN.match(origin))


# gzip on the wire, when the client accepts it: the patient pages, the static files (chunk
# by chunk, still versioned, long-cached and answering 304 to their gzip ETag) and JSON,
# the FHIR API's included. Not, on purpose (SECURITY.md, "Compression and BREACH"):
# - the staff side (everything under /staff): its pages hold the most valuable secrets
#   (invitation links and codes, second-factor secrets, recovery codes, new API tokens)
#   and the only pages that repeat free text from a URL (the audit log's filters, the
#   sign-in's `next`), on the clinic's desks where the bytes do not matter;
# - downloads (`Content-Disposition: attachment`): their length and bytes stay as built;
# - partial content (206, `Content-Range`): a Range request still means identity bytes;
# - any answer outside 200-299 (Flask-Compress itself): error pages, and the 4xx pages
#   that show again what was posted, go out as they are.
COMPRESS_MIMETYPES = [
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/fhir+json",
    "image/svg+xml",
]

COMPRESS_SETTINGS = {
    # gzip alone: every browser and proxy speaks it, and it keeps one code path.
    "COMPRESS_ALGORITHM": ["gzip"],
    "COMPRESS_ALGORITHM_STREAMING": ["gzip"],  # static files are streamed responses
    "COMPRESS_LEVEL": 6,
    "COMPRESS_MIMETYPES": COMPRESS_MIMETYPES,
    "COMPRESS_MIN_SIZE": 500,  # below this gzip's own header costs more than it saves
    "COMPRESS_STREAMS": True,
    # The hook below decides per response; the extension does not register its own.
    "COMPRESS_REGISTER": False,
}


def _add_compression(app: Flask) -> None:
    """gzip on the wire (Flask-Compress) when the client accepts it, so a patient page fits
    the first round trip of a phone's connection."""
    for key, value in COMPRESS_SETTINGS.items():
        app.config.setdefault(key, value)
    app.config["COMPRESS_REGISTER"] = False
    compress.init_app(app)
    app.after_request(_compress_response)


def _compress_response(response: Response) -> Response:
    if (
        errors.side_of(request.path) is errors.STAFF
        or response.status_code == 206
        or "Content-Range" in response.headers
        or response.headers.get("Content-Disposition", "").lower().startswith("attachment")
    ):
        return response
    source = response.response
    response = compress.after_request(response)
    if response.headers.get("Content-Encoding") == "gzip":
        # Byte ranges are offered on the identity bytes only.
        response.headers.pop("Accept-Ranges", None)
        if response.response is not source and hasattr(source, "close"):
            # A streamed file read through the compressor is closed once it is sent.
            response.call_on_close(source.close)
    return response


def _warn_on_debug_host(app: Flask) -> None:
    """`flask run --debug --host 0.0.0.0` exposes the debugger: say so loudly."""
    if not app.debug:
        return
    host = os.environ.get("FLASK_RUN_HOST", "127.0.0.1")
    argv = sys.argv
    for flag in ("--host", "-h"):
        if flag in argv[:-1]:
            host = argv[argv.index(flag) + 1]
    for arg in argv:
        if arg.startswith("--host="):
            host = arg.split("=", 1)[1]
    config_module.warn_if_unsafe(host, True)


logging.getLogger("waitress.queue").setLevel(logging.ERROR)

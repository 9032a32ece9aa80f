"""Pre-visit reflection: a self-hosted app for psychiatric medication visits."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from flask import Flask, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from . import admin, auth, commands, i18n, patient, questionnaire, staff, storage, web
from . import config as config_module

__version__ = "0.1.0"

csrf = CSRFProtect()
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
    app.config.from_mapping(config_module.DEFAULTS)
    app.config["DATABASE"] = str(instance / "patientapp.db")
    app.config.update(config_module.from_environment())
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = config_module.load_or_create_secret(instance)
    app.config.setdefault("OFFERED_LANGUAGES", _configured_languages())
    app.config.setdefault("DEFAULT_LANGUAGE", os.environ.get("PATIENTAPP_DEFAULT_LANGUAGE", "en"))

    _check_definition()
    storage.initialise(app.config["DATABASE"])
    web.init_app(app)
    i18n.init_app(app)
    csrf.init_app(app)
    _register_blueprints(app)
    _register_handlers(app)
    _warn_on_debug_host(app)
    return app


def _configured_languages() -> list[str]:
    raw = os.environ.get("PATIENTAPP_LANGUAGES", "")
    if raw.strip():
        return [code.strip() for code in raw.split(",") if code.strip()]
    return i18n.available_languages()


def _check_definition() -> None:
    from .summary import check_references

    problems = check_references(questionnaire.default())
    if problems:
        raise questionnaire.DefinitionError("; ".join(problems))


def _register_blueprints(app: Flask) -> None:
    app.register_blueprint(patient.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(admin.bp)
    commands.init_app(app)


ERROR_MESSAGES = {
    400: _l("Something in that request didn't look right. Please go back and try again."),
    403: _l("You don't have access to this page."),
    404: _l("We couldn't find that page."),
    405: _l("That action isn't available here."),
    413: _l("That was more text than we can take. Please shorten it and try again."),
    429: _l("Too many tries for now. Please wait a few minutes and try again."),
}


def _register_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(_error):
        message = _l(
            "This page was open too long or in another window, so for your "
            "privacy we couldn't save it. Please open your link again."
        )
        return render_template("error.html", message=message, code=400), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        message = ERROR_MESSAGES.get(error.code, ERROR_MESSAGES[400])
        return render_template("error.html", message=message, code=error.code), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if app.testing and not app.config.get("CATCH_ERRORS_IN_TESTS"):
            raise error
        # Log the type and place only: answers must never reach a log.
        app.logger.error(
            "unhandled %s on %s %s",
            type(error).__name__,
            request.method,
            request.url_rule.rule if request.url_rule else "?",
        )
        message = _l(
            "Sorry, something went wrong on our side. Your earlier answers are "
            "saved. Please try again."
        )
        return render_template("error.html", message=message, code=500), 500

    @app.after_request
    def security_headers(response):
        headers = response.headers
        if request.endpoint != "static":
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
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

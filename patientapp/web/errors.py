"""Error pages per side: patients and staff each read their own words in their own layout.

As in SecureDrop's source and journalist apps, the two sides never share an error page.
Each blueprint registers its side's handlers, which catch what goes wrong inside its
routes: an expired form, an abort, a crash. A URL that matches no route (or no route for
its method) belongs to no blueprint, so the app's handlers pick the side by the path.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, g, render_template, request
from flask_babel import LazyString, refresh
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, SecurityError

from patientapp.db import storage

STAFF_PREFIX = "/staff"
RETRY_AFTER_SECONDS = 5

HTTP_MESSAGES = {
    400: _l("Something in that request didn't look right. Please go back and try again."),
    403: _l("You don't have access to this page."),
    404: _l("We couldn't find that page."),
    405: _l("That action isn't available here."),
    413: _l("That was more text than we can take. Please shorten it and try again."),
    429: _l("Too many tries for now. Please wait a few minutes and try again."),
}


@dataclass(frozen=True)
class ErrorPages:
    """One side's error template and the messages only that side reads."""

    template: str
    expired_form: LazyString  # a POST whose CSRF token is missing or too old
    crashed: LazyString  # an unexpected exception
    write_failed: LazyString  # the database could not save for now: locked, full, read-only

    def register(self, blueprint: Blueprint) -> None:
        """Answer errors in the blueprint's routes with this side's pages."""
        blueprint.register_error_handler(CSRFError, self.expired_form_page)
        blueprint.register_error_handler(HTTPException, self.http_error_page)
        for error in storage.OPERATIONAL_ERRORS:  # plain sqlite3 or SQLCipher
            blueprint.register_error_handler(error, self.write_failed_page)
        blueprint.register_error_handler(Exception, self.crash_page)

    def render(self, message: LazyString, code: int):
        return render_template(self.template, message=message, code=code), code

    def expired_form_page(self, _error: CSRFError):
        return self.render(self.expired_form, 400)

    def http_error_page(self, error: HTTPException):
        if isinstance(error, SecurityError):
            # A Host outside TRUSTED_HOSTS: with no URL adapter, the page's links
            # (url_for) cannot be built, so the answer is the message alone.
            return Response(str(HTTP_MESSAGES[400]), 400, mimetype="text/plain")
        return self.render(HTTP_MESSAGES.get(error.code, HTTP_MESSAGES[400]), error.code)

    def write_failed_page(self, error: sqlite3.OperationalError):
        """503 and the screen kept as typed (see ``keep_page``), or this side's error page."""
        cause = storage.write_failure(error)
        if cause is None:
            return self.crash_page(error)
        current_app.logger.error(
            "database write failed on %s %s: %s", request.method, _rule(), cause
        )
        kept = g.pop("kept_page", None)
        if kept is None:
            body = render_template(self.template, message=self.write_failed, code=503)
        else:
            template, context = kept
            refresh()  # a language picked with this POST shows the kept screen in it
            body = render_template(template, **context, write_failed=self.write_failed)
        return body, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}

    def crash_page(self, error: Exception):
        if current_app.testing and not current_app.config.get("CATCH_ERRORS_IN_TESTS"):
            raise error
        # Log the type and place only: answers must never reach a log.
        current_app.logger.error(
            "unhandled %s on %s %s",
            type(error).__name__,
            request.method,
            _rule(),
        )
        return self.render(self.crashed, 500)


def _rule() -> str:
    """The route's pattern, never the path: a path may hold an invitation token."""
    return request.url_rule.rule if request.url_rule else "?"


def keep_page(template: str, **context) -> None:
    """Should a save later in this request fail for a moment, show this screen again, as
    typed, with a note to retry: nothing the patient entered is thrown away."""
    g.kept_page = (template, context)


PATIENT = ErrorPages(
    "patient/error.html",
    expired_form=_l(
        "This page was open too long or in another window, so for your "
        "privacy we couldn't save it. Please open your link again."
    ),
    crashed=_l(
        "Sorry, something went wrong on our side. Your earlier answers are saved. Please try again."
    ),
    write_failed=_l(
        "We could not save just now. Your answers on this screen are kept. "
        "Please try again in a moment."
    ),
)
STAFF = ErrorPages(
    "staff/error.html",
    expired_form=_l(
        "This form expired, so nothing was saved. Please reload the page and try again."
    ),
    crashed=_l("Sorry, something went wrong on our side. Please try again."),
    write_failed=_l(
        "The database could not save just now, so this change was not saved. "
        "Please try again in a moment."
    ),
)


def side_of(path: str) -> ErrorPages:
    """Everything under /staff is the staff side's; every other path is the patients'."""
    return STAFF if path == STAFF_PREFIX or path.startswith(STAFF_PREFIX + "/") else PATIENT


def _http_error_by_path(error: HTTPException):
    return side_of(request.path).http_error_page(error)


def _crash_by_path(error: Exception):
    return side_of(request.path).crash_page(error)


def _write_failed_by_path(error: sqlite3.OperationalError):
    return side_of(request.path).write_failed_page(error)


def init_app(app: Flask) -> None:
    """Errors outside every blueprint's routes, such as an unknown URL."""
    app.register_error_handler(HTTPException, _http_error_by_path)
    for error in storage.OPERATIONAL_ERRORS:
        app.register_error_handler(error, _write_failed_by_path)
    app.register_error_handler(Exception, _crash_by_path)

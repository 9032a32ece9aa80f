"""Clinic tablet mode: a device the front desk hands to patient after patient.

A staff member turns it on from the board; that signs them out and leaves a long-lived
cookie on the device. While it is set, the device opens at code entry, every patient
session ends with the whole session cookie removed and a clean code-entry screen, and
only a staff sign-in on the device turns the mode off again. Both changes are audited.
"""

from __future__ import annotations

from flask import current_app, request

COOKIE = "patientapp_tablet"
MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers keep a cookie
RETURN_SECONDS = 60  # the thank-you and closed pages go back to code entry after this


def active() -> bool:
    """Whether this device is a waiting-room tablet."""
    return request.cookies.get(COOKIE) == "1"


def turn_on(response) -> None:
    response.set_cookie(
        COOKIE,
        "1",
        max_age=MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
    )


def turn_off(response) -> None:
    response.delete_cookie(COOKIE, httponly=True, samesite="Lax")

"""The second factor's pieces with no web in them: TOTP secrets and codes (pyotp), the QR
code to scan (segno, inline SVG, so no request leaves the server), and recovery codes.

Times come from the caller (the app's clock), so tests move them by hand. An
authenticator app counts real time and knows no zone: a naive time from the clock is the
clinic's local time (Settings), turned into that instant before a code is counted.
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime

import pyotp
import segno

from patientapp.db import storage

ISSUER = "patientapp"
DIGITS = 6
INTERVAL = 30
# A code from the step before or after the current one still counts: phone clocks drift.
WINDOW = 1
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
RECOVERY_LENGTH = 10  # 50 random bits each
TOTP_SHAPE = re.compile(r"^[0-9]{6}$")  # ASCII digits only: \d takes any script's


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer or ISSUER)


def qr_svg(uri: str, title: str) -> str:
    return segno.make(uri, error="m", micro=False).svg_inline(scale=4, title=title)


def spaced(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def normalise(code: str) -> str:
    """What was typed, without spaces and dashes, in lower case."""
    return re.sub(r"[\s-]", "", code or "").lower()


def looks_like_totp(code: str) -> bool:
    return bool(TOTP_SHAPE.match(normalise(code)))


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step whose code is `code`, within the allowed drift of `at`, or None.
    The caller must still refuse a step at or before the last one accepted (replay)."""
    code = normalise(code)
    if not TOTP_SHAPE.match(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    current = totp.timecode(storage.to_utc(at))
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def current_code(secret: str, at: datetime) -> str:
    """The code an authenticator app shows at `at` (for tests and the enrolment check)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).at(storage.to_utc(at))


def new_recovery_codes() -> list[str]:
    """Ten single-use codes, shown as xxxxx-xxxxx."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes

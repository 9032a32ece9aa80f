"""Passwords and the other secrets of staff accounts: the password rules (length, common
passwords, the person's own details, zxcvbn's score) and hashing (argon2id for passwords
and recovery codes, SHA-256 for random secrets: session ids, device nonces, the setup
link). No request is needed; the hasher follows the app's PASSWORD_HASHER setting.
"""

from __future__ import annotations

import hashlib
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import lazy_gettext as _l
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

MIN_PASSWORD = 10
_argon2 = PasswordHasher()
# Recovery codes carry 50 random bits, so OWASP's minimum argon2id settings (19 MiB, two
# passes) are plenty, and checking a typed code against all ten stays well under a second.
_argon2_recovery = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


# --- hashing -----------------------------------------------------------------------------


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


def hash_secret(secret: str) -> str:
    """A random secret's SHA-256 (a session id, a device nonce, the setup link): 256
    random bits need no slow hash, and only this is stored."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


# --- the rules ---------------------------------------------------------------------------

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

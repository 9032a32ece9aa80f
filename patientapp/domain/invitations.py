"""Invitation secrets: a link token (256 random bits) and a short typed code.

Only SHA-256 hashes of both are stored, so a copy of the database cannot open a visit.
The short code uses Crockford's base32 alphabet (no I, L, O, U), and typing is forgiving:
case, spaces, dashes and the look-alikes O/I/L are normalised before lookup.
Making and re-issuing an invitation is a visit change: see ``visits``.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


@dataclass(frozen=True)
class Invitation:
    """What staff hand to the patient; the plain token and code exist only here."""

    visit_id: int
    token: str
    code: str
    expires_at: datetime


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_code() -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(CODE_LENGTH))


def normalise_code(typed: str) -> str | None:
    """The canonical code for what a person typed, or None if it cannot be one. A phone's
    keyboard in another script types it its own way: full-width letters and digits from a
    Chinese keyboard (U+FF21 for "A"), Arabic-Indic digits (U+0660 for "0"), any dash or
    space between the groups; each is read as the letter or digit it shows."""
    plain = unicodedata.normalize("NFKC", typed)
    kept = []
    for ch in plain:
        if ch in " _." or ch.isspace() or unicodedata.category(ch) == "Pd":
            continue  # a separator: any space or dash (en, em, minus-like hyphens)
        kept.append(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch)
    cleaned = "".join(kept).upper().translate(_LOOKALIKES)
    if len(cleaned) != CODE_LENGTH or any(ch not in CROCKFORD for ch in cleaned):
        return None
    return cleaned


def format_code(code: str) -> str:
    """Show a code in two groups of five, easier to read aloud and type."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()

"""Patient words in the plain text of the one page (the text export, "Copy as text"),
in their own order inside a line of the reader's.

Plain text has no dir="auto": a quote holding the other direction's letters would pull
its quotation marks and language tag into its own order (UAX #9). So such words get a
mark of the reader's direction either side of their quotation marks, and each of their
lines that starts in the other direction an embedding of that direction (marks alone
leave a full stop, a number or a Latin medicine name at the wrong end). Marks and
embeddings are Unicode 2.0's, which old systems keep; isolates (6.3) may show as boxes.
Words of the reader's direction are left exactly as written.
"""

from __future__ import annotations

import unicodedata

from patientapp.i18n import current_language

MARKS = {"ltr": "\u200e", "rtl": "\u200f"}  # LEFT-TO-RIGHT MARK, RIGHT-TO-LEFT MARK
EMBEDDINGS = {"ltr": "\u202a", "rtl": "\u202b"}  # LRE, RLE; POP ends either
POP = "\u202c"  # POP DIRECTIONAL FORMATTING
STRONG = {"L": "ltr", "R": "rtl", "AL": "rtl"}  # bidirectional class -> direction
AGAINST = {"ltr": {"R", "AL", "AN"}, "rtl": {"L"}}  # what turns neutrals around in each


# Embeddings, overrides and isolates a patient may have typed (or pasted): left in, an
# unclosed one would carry on past the quotation marks into the rest of the line.
CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))


def in_reading_order(words: str) -> tuple[str, str]:
    """(the words, the mark to put either side of their quotation marks) for a reader of
    the current language: the words without direction controls of their own, unchanged
    besides and no mark when nothing in them would turn the line around, else each line
    of the other direction embedded, and the reader's mark."""
    words = words.translate(CONTROLS)
    reader = current_language().direction
    if not AGAINST[reader] & {unicodedata.bidirectional(c) for c in words}:
        return words, ""
    lines = words.splitlines(keepends=True)
    return "".join(_embedded(line, reader) for line in lines), MARKS[reader]


def _embedded(line: str, reader: str) -> str:
    """The line (with its line break) in an embedding of its own direction, or as it is
    when that is the reader's: a line break ends every embedding."""
    words = line.splitlines()[0]  # without its line break
    own = next((STRONG[c] for c in map(unicodedata.bidirectional, words) if c in STRONG), reader)
    if own == reader:
        return line
    return f"{EMBEDDINGS[own]}{words}{POP}{line[len(words) :]}"

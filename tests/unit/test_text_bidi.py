"""A quote of the other direction in the plain-text export (summary/text.py) reads in its
own order inside a line of the reader's: a mark of the reader's direction either side of
its quotation marks, and its words in an embedding of their own direction. Quotes of the
reader's direction stay exactly as they were."""

from __future__ import annotations

import pytest
from flask_babel import force_locale

from patientapp.summary.text import quoted_text
from patientapp.summary.view import Text

LRM, RLM = "\u200e", "\u200f"
LRE, RLE, PDF = "\u202a", "\u202b", "\u202c"
ARABIC = "أريد أن أتحدث عن الدواء الجديد"


@pytest.fixture
def quoted(app):
    """The quote as the plain text writes it for a reader of ``reader``."""

    def quote(reader: str, words: str, tag: str = "") -> str:
        with app.app_context(), force_locale(reader):
            return quoted_text(Text(words, tag))

    return quote


@pytest.mark.parametrize(
    ("reader", "words", "tag"),
    [
        ("en", "Whether I can lower the dose before summer.", ""),
        ("en", "Quiero hablar de la dosis.", "Español"),
        ("vi", "Tôi muốn nói về thuốc mới.", ""),
        ("en", "Sleep, 20 mg — “really”?", ""),
        ("ar", ARABIC + ".", ""),
        ("ar", "٣ أشياء", ""),
    ],
)
def test_a_quote_in_the_readers_direction_stays_as_it_was(quoted, reader, words, tag):
    suffix = f" [{tag}]" if tag else ""
    assert quoted(reader, words, tag) == f"“{words}”{suffix}"


def test_arabic_words_for_an_english_reader(quoted):
    assert quoted("en", ARABIC, "العربية") == f"{LRM}“{RLE}{ARABIC}{PDF}”{LRM} [العربية]"


def test_english_words_for_an_arabic_reader(quoted):
    words = "Whether I can lower the dose before summer."
    assert quoted("ar", words, "English") == f"{RLM}“{LRE}{words}{PDF}”{RLM} [English]"


def test_every_left_to_right_reader_is_one(quoted):
    assert quoted("vi", ARABIC, "العربية") == f"{LRM}“{RLE}{ARABIC}{PDF}”{LRM} [العربية]"


def test_words_that_start_in_the_readers_direction_need_only_the_marks(quoted):
    """dir="auto" on the page reads them left to right too; the marks keep the closing
    quotation mark and the tag off the Arabic words at their end."""
    words = "Sertraline, " + ARABIC
    assert quoted("en", words, "العربية") == f"{LRM}“{words}”{LRM} [العربية]"


def test_arabic_digits_alone_turn_neutrals_around_too(quoted):
    assert quoted("en", "٣٠", "العربية") == f"{LRM}“٣٠”{LRM} [العربية]"


def test_each_line_of_a_quote_has_its_own_embedding(quoted):
    """A line break ends every embedding (UAX #9), so each line opens its own; the
    breaks themselves are kept as written."""
    words = f"{ARABIC}\r\nSertraline\n{ARABIC}"
    assert quoted("en", words, "العربية") == (
        f"{LRM}“{RLE}{ARABIC}{PDF}\r\nSertraline\n{RLE}{ARABIC}{PDF}”{LRM} [العربية]"
    )


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        (f"x {RLE}{ARABIC}", f"x {ARABIC}"),  # an embedding never closed
        ("abc\u202edef", "abcdef"),  # an override, with no Arabic letter at all
        (f"\u2067{ARABIC}", ARABIC),  # an isolate
    ],
)
def test_direction_controls_a_patient_typed_are_left_out(quoted, typed, kept):
    """Left in, an unclosed one would carry the quotation marks and the tag (and the
    rest of the line) along with it."""
    out = quoted("en", typed, "T")
    assert not set(out) & set("\u202d\u202e\u2066\u2067\u2068\u2069")
    assert out.count(RLE) + out.count(LRE) == out.count(PDF)  # each embedding closed
    words = out.split("“", 1)[1].rsplit("”", 1)[0]
    assert words.replace(RLE, "").replace(PDF, "") == kept
    assert out.endswith(("” [T]", f"”{LRM} [T]"))

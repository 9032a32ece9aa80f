"""The plain-text export as a real renderer lays it out: Chromium, a <textarea> in the
reader's direction, where each character lands (Range.getBoundingClientRect on the
textarea's own text). A quote of the other direction reads in its own order, its closing
quotation mark and language tag in the reader's (summary/text.py, quoted_text)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FULL_ANSWERS, finish_visit

pytestmark = pytest.mark.browser

ARABIC = "أريد أن أتحدث عن الدواء الجديد"
ENGLISH = FULL_ANSWERS[1]["T2"]  # "Whether I can lower the dose before summer."

# Each character of the textarea's text with its box: the text node inside the textarea
# is in its user-agent shadow root, which only the DevTools protocol reaches.
BOXES = """function () {
    return JSON.stringify(Array.from(this.data, (c, i) => {
        const range = document.createRange();
        range.setStart(this, i);
        range.setEnd(this, i + 1);
        const box = range.getBoundingClientRect();
        return [c, box.left, box.right];
    }));
}"""


def agenda_line(app, psychiatrist, agenda: str, language: str, reader: str) -> str:
    """The export's "wants to talk about" line of a visit answered in ``language``, as a
    reader of ``reader`` downloads it."""
    answers = {**FULL_ANSWERS, 1: {**FULL_ANSWERS[1], "T2": agenda}}
    visit_id = finish_visit(app, answers, language=language).visit_id
    text = psychiatrist.get(f"/staff/visits/{visit_id}/summary.txt?lang={reader}")
    return next(line for line in text.get_data(as_text=True).splitlines() if agenda in line)


def laid_out(chromium, line: str, direction: str) -> list[tuple[str, float]]:
    """Each drawn character of ``line`` in a textarea and the middle of its box (x, in
    px), in the line's (logical) order; the invisible marks are left out."""
    page = chromium.new_page()
    try:
        page.set_content(f'<textarea dir="{direction}" cols="120" rows="2"></textarea>')
        page.eval_on_selector("textarea", "(area, line) => { area.value = line; }", line)
        cdp = page.context.new_cdp_session(page)
        node = _text_in(cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"])
        found = cdp.send("DOM.resolveNode", {"backendNodeId": node["backendNodeId"]})
        boxes = cdp.send(
            "Runtime.callFunctionOn",
            {
                "objectId": found["object"]["objectId"],
                "functionDeclaration": BOXES,
                "returnByValue": True,
            },
        )
    finally:
        page.close()
    drawn = json.loads(boxes["result"]["value"])
    return [(c, (left + right) / 2) for c, left, right in drawn if right > left]


def _text_in(node: dict, inside: bool = False) -> dict | None:
    """The first text node inside the page's textarea."""
    inside = inside or node.get("nodeName") == "TEXTAREA"
    if inside and node.get("nodeType") == 3:
        return node
    for child in node.get("children", []) + node.get("shadowRoots", []):
        found = _text_in(child, inside)
        if found:
            return found
    return None


def x(boxes, char: str, nth: int = -1) -> float:
    """Where the ``nth`` ``char`` of the line is drawn."""
    return [middle for c, middle in boxes if c == char][nth]


def test_an_english_reader_reads_an_arabic_quote_then_its_tag(chromium, app, psychiatrist):
    line = agenda_line(app, psychiatrist, ARABIC, "ar", "en")
    assert line.endswith("[العربية]")
    boxes = laid_out(chromium, line, "ltr")
    assert x(boxes, "”") < x(boxes, "["), "the closing quotation mark is left of the tag"
    tag, rest = boxes[-len("[العربية]") :], boxes[: -len("[العربية]")]
    assert min(m for _c, m in tag) > max(m for _c, m in rest), "the tag is the rightmost part"
    # The Arabic words read right to left between the quotation marks.
    assert x(boxes, "“") < x(boxes, "د") < x(boxes, "أ", 0) < x(boxes, "”")


def test_an_arabic_reader_reads_an_english_quote_then_its_tag(chromium, app, psychiatrist):
    line = agenda_line(app, psychiatrist, ENGLISH, "en", "ar")
    assert line.endswith("[English]")
    boxes = laid_out(chromium, line, "rtl")
    assert x(boxes, "”") > x(boxes, "["), "the closing quotation mark is right of the tag"
    tag, rest = boxes[-len("[English]") :], boxes[: -len("[English]")]
    assert max(m for _c, m in tag) < min(m for _c, m in rest), "the tag is the leftmost part"
    # The English words read left to right, their full stop last, between the marks.
    assert x(boxes, "”") < x(boxes, "W") < x(boxes, ".") < x(boxes, "“")


def test_a_latin_medicine_name_ends_an_arabic_quote_on_its_left(chromium, app, psychiatrist):
    """What marks alone cannot do: a name in Latin letters at the end of Arabic words
    ends them (on their left), as the page's dir="auto" shows them."""
    words = "أريد أن أتحدث عن Sertraline"
    boxes = laid_out(chromium, agenda_line(app, psychiatrist, words, "ar", "en"), "ltr")
    assert x(boxes, "“") < x(boxes, "S") < x(boxes, "e", -1) < x(boxes, "أ", 0) < x(boxes, "”")
    assert x(boxes, "”") < x(boxes, "[")


def test_an_arabic_quote_inside_an_english_opener_keeps_the_sentence_in_order(
    chromium, app, psychiatrist
):
    """An opener quotes the patient inside the reader's sentence (summary/view.py): the
    sentence goes on after the closing quotation mark and the tag, left to right."""
    words = "أمي تقول إن الحبوب ضعف"
    answers = {**FULL_ANSWERS, 4: {**FULL_ANSWERS[4], "F2_text": words}}
    visit_id = finish_visit(app, answers, language="ar").visit_id
    text = psychiatrist.get(f"/staff/visits/{visit_id}/summary.txt?lang=en")
    line = next(line for line in text.get_data(as_text=True).splitlines() if words in line)
    assert "” [العربية] about your background" in line.replace("\u200e", "")
    boxes = laid_out(chromium, line, "ltr")
    assert x(boxes, "Y", 0) < x(boxes, "“") < x(boxes, "ف") < x(boxes, "أ", 0) < x(boxes, "”")
    assert x(boxes, "”") < x(boxes, "[") < x(boxes, "]") < x(boxes, "b", 0)

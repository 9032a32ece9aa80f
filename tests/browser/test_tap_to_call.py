"""A crisis number in Arabic, in Chromium: a tap-to-call link that reads left to right
inside the right-to-left page, and on paper its digits alone, no "tel:" address."""

from __future__ import annotations

from pathlib import Path

import pytest

from patientapp.db import storage
from tests.conftest import Patient, make_invitation

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[2] / "patientapp" / "static"
NUMBER = "+44 20 7946 0958"


def test_arabic_crisis_number_is_a_left_to_right_link_and_plain_on_paper(chromium, app, db):
    if "ar" not in app.config["OFFERED_LANGUAGES"]:
        pytest.skip("needs the Arabic catalog")
    storage.save_settings(db, {"crisis_phone_numbers": f"الطوارئ {NUMBER}"})
    html = Patient(app.test_client()).open(make_invitation(app, language="ar").token)
    page = chromium.new_page()
    try:
        page.set_content(html.get_data(as_text=True))
        page.add_style_tag(content=(STATIC / "app.css").read_text("utf-8"))
        print_css = (STATIC / "print.css").read_text("utf-8")
        page.add_style_tag(content=f"@media print {{ {print_css} }}")
        link = page.locator(".crisis-numbers a.tel")
        assert link.get_attribute("href") == "tel:+442079460958"
        assert link.evaluate("a => getComputedStyle(a).direction") == "ltr"
        assert link.evaluate("a => getComputedStyle(a.parentElement).direction") == "rtl"
        # Left to right: "+44" is left of "0958" although the paragraph runs right to left.
        boxes = link.evaluate(
            """a => {
                const r = document.createRange(), t = a.firstChild, n = t.length;
                r.setStart(t, 0); r.setEnd(t, 3);
                const first = r.getBoundingClientRect().x;
                r.setStart(t, n - 4); r.setEnd(t, n);
                return [first, r.getBoundingClientRect().x];
            }"""
        )
        assert boxes[0] < boxes[1], boxes
        page.emulate_media(media="print")
        assert link.is_visible() and link.inner_text() == NUMBER
        after = link.evaluate("a => getComputedStyle(a, '::after').content")
        assert after in ("none", "normal"), after
        assert "tel:" not in page.locator(".crisis-numbers").inner_text()
    finally:
        page.close()

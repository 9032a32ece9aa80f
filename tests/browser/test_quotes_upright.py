"""A patient's own words are set in italic on the review and the one page, except in
Arabic and Chinese, which have no italic: the browser would only slant the letters."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Patient, make_invitation

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[2] / "patientapp" / "static"
WORDS = {"en": "The new dose", "ar": "الجرعة الجديدة", "zh_Hans": "新的剂量"}


@pytest.mark.parametrize(
    ("language", "style"), [("en", "italic"), ("ar", "normal"), ("zh_Hans", "normal")]
)
def test_the_reviews_quote_is_italic_only_where_the_script_has_italic(
    chromium, app, language, style
):
    if language not in app.config["OFFERED_LANGUAGES"]:
        pytest.skip(f"needs the {language} catalog")
    patient = Patient(app.test_client())
    patient.start(make_invitation(app, language=language).token)
    patient.post("/step/1", {"action": "next", "T2": WORDS[language]})
    html = patient.client.get("/review").get_data(as_text=True)
    page = chromium.new_page()
    try:
        page.set_content(html)
        page.add_style_tag(content=(STATIC / "app.css").read_text("utf-8"))
        quote = page.locator(".answer q", has_text=WORDS[language])
        assert quote.evaluate("q => getComputedStyle(q).fontStyle") == style
    finally:
        page.close()

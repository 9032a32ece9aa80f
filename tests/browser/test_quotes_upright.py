"""A patient's own words are set in italic on the review and the one page, except in
Arabic and Chinese, which have no italic: the browser would only slant the letters."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FULL_ANSWERS, Patient, finish_visit, make_invitation

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
    html = patient.to_review().get_data(as_text=True)
    page = chromium.new_page()
    try:
        page.set_content(html)
        page.add_style_tag(content=(STATIC / "app.css").read_text("utf-8"))
        quote = page.locator(".answer q", has_text=WORDS[language])
        assert quote.evaluate("q => getComputedStyle(q).fontStyle") == style
    finally:
        page.close()


def test_the_one_pages_arabic_quote_is_upright_and_marked_for_an_english_reader(
    chromium, app, psychiatrist
):
    """The page marks the patient's words with their language (lang="ar", for screen
    readers and fonts), so an English reader's page sets them upright too."""
    answers = {**FULL_ANSWERS, 1: {**FULL_ANSWERS[1], "T2": WORDS["ar"]}}
    visit_id = finish_visit(app, answers, language="ar").visit_id
    html = psychiatrist.get(f"/staff/visits/{visit_id}/summary?lang=en").get_data(as_text=True)
    page = chromium.new_page()
    try:
        page.set_content(html)
        page.add_style_tag(content=(STATIC / "staff.css").read_text("utf-8"))
        quote = page.locator(".summary .quote", has_text=WORDS["ar"]).first
        assert quote.get_attribute("lang") == "ar"
        assert quote.evaluate("q => getComputedStyle(q).fontStyle") == "normal"
    finally:
        page.close()

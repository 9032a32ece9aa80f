"""M0 both ways, in Chromium, in English, Spanish and Arabic: "No" passes over the
medicine questions (Next and Back), the progress counts the screens this patient meets,
the review says they were not asked; changing to "Yes" from the review asks them again.
A language switch on the M0 screen keeps the answer ticked."""

from __future__ import annotations

import re

import pytest

from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire

from .patient_ui import expect, translator

pytestmark = pytest.mark.browser

Q = questionnaire.default()
NOT_ASKED = frozenset(Q.not_asked({"M0": "no"}))  # with every standard measure's items
ALL_SCREENS = len(patient_forms.shown_pages(Q, frozenset(Q.not_asked({}))))
FEWER_SCREENS = len(patient_forms.shown_pages(Q, NOT_ASKED))
NOTE = (
    "Questions about taking medicine were not asked, because you said you are not "
    "taking any right now."
)


def _next(page) -> None:
    with page.expect_navigation():
        page.locator("main .nav button.primary").tap()
    page.wait_for_load_state("load")


def _progress_total(page) -> int:
    return int(re.findall(r"\d+", page.locator(".progress p").inner_text())[-1])


def _shown_items(page) -> set[str]:
    return {i for i in Q.item_ids if page.locator(f"#q-{i}, #{i}").count()}


@pytest.mark.parametrize("language", ["en", "es", "ar"])
def test_no_passes_over_the_medicine_questions_and_yes_asks_them_again(
    phone, live_server, language
):
    _ = translator(language)
    page = phone.open(360)
    page.goto(f"{live_server.invite().link}?lang={language}")
    page.locator("main form button.primary").tap()
    expect(page).to_have_url(re.compile(r"/step/1$"))
    assert _progress_total(page) == ALL_SCREENS
    page.locator("label.option:has(input[name=M0][value=no])").tap()

    # A language switch on this screen saves the answer and keeps it ticked.
    other = "es" if language != "es" else "en"
    page.locator("details.languages > summary").tap()
    with page.expect_navigation():
        page.locator(f"button[name=lang][value={other}]").tap()
    expect(page.locator("input[name=M0][value=no]")).to_be_checked()
    with page.expect_navigation():
        page.locator("details.languages > summary").tap()
        page.locator(f"button[name=lang][value={language}]").tap()
    expect(page.locator("html")).to_have_attribute("lang", language.replace("_", "-"))

    # Next: straight past the medicine questions, and the progress counts one screen less.
    _next(page)
    shown = _shown_items(page)
    assert "M6" in shown and not shown & NOT_ASKED, shown
    assert _progress_total(page) == FEWER_SCREENS
    # Back: straight to M0 again, still "No".
    with page.expect_navigation():
        page.locator("main .nav button[value=back]").tap()
    expect(page.locator("input[name=M0][value=no]")).to_be_checked()
    # On to the review: the unasked questions are not listed, and it says why.
    for _screen in range(20):
        if page.url.endswith("/review"):
            break
        assert not _shown_items(page) & NOT_ASKED, page.url
        _next(page)
    expect(page).to_have_url(re.compile(r"/review$"))
    main = page.locator("main")
    expect(main).to_contain_text(_(NOTE).split(",")[0].split("،")[0])
    expect(main).not_to_contain_text(_(Q.items["M1"].prompt))
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    # "Change" on the medicines: the screen asking M0. "Yes" asks the list again.
    with page.expect_navigation():
        page.locator("button[value=edit-2]").tap()
    page.locator("label.option:has(input[name=M0][value=yes])").tap()
    _next(page)
    expect(page.locator("#M1-0-name")).to_be_visible()
    assert _progress_total(page) == ALL_SCREENS
    page.locator("#M1-0-name").fill("Lithium")
    for _screen in range(20):
        if page.url.endswith("/review"):
            break
        _next(page)
    expect(main).to_contain_text("Lithium")
    expect(main).not_to_contain_text(_(NOTE).split(",")[0].split("،")[0])

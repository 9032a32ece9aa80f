"""Changing M0 in Chromium loses nothing and asks what was never asked: "No" from the
first, then "Change" -> "Yes" on the review walks through the medicine screens and P1's
(a later step's question, never shown) before the review, so P1 never reads "Skipped";
a later "No" keeps the medicine list unshown, "Yes" again shows it as typed; sent with
"Yes", the list and P1 are stored."""

from __future__ import annotations

import json
import re

import pytest

from patientapp.questionnaire import model as questionnaire

from .patient_ui import expect, option

pytestmark = pytest.mark.browser

Q = questionnaire.default()
MEDICINE = "Sertraline 100 mg"


def _primary(page) -> None:
    """Next, or "Back to review" where the screen leads back there."""
    with page.expect_navigation():
        page.locator("main .nav button.primary").tap()
    page.wait_for_load_state("load")


def _review_row(page, item_id: str):
    return page.locator(f"li.answer:has(#p-{item_id})")


def _change_m0(page, answer: str) -> None:
    """On the review: "Change" on the medicines, then M0 answered."""
    with page.expect_navigation():
        page.locator("button[value=edit-2]").tap()
    option(page, "#q-M0", answer).tap()


def test_m0_changed_from_the_review_asks_p1_and_keeps_the_medicine_list(phone, live_server):
    invitation = live_server.invite()
    page = phone.open(360)
    page.goto(invitation.link)
    page.locator("main form button.primary").tap()
    expect(page).to_have_url(re.compile(r"/step/1$"))
    option(page, "#q-M0", "No").tap()
    for _screen in range(25):
        if page.url.endswith("/review"):
            break
        assert not page.locator("#q-P1").count(), page.url  # never shown while "No"
        _primary(page)
    expect(page).to_have_url(re.compile(r"/review$"))

    # "Yes" from the review: the medicine screens, then P1's, then back to the review.
    _change_m0(page, "Yes")
    _primary(page)
    page.locator("#M1-0-name").fill(MEDICINE)
    asked_p1 = False
    for _screen in range(12):
        if page.url.endswith("/review"):
            break
        if page.locator("#q-P1").count():
            asked_p1 = True
            option(page, "#q-P1", "I stopped taking it").tap()
        _primary(page)
    expect(page).to_have_url(re.compile(r"/review$"))
    assert asked_p1, "P1 was never asked before the review"
    expect(_review_row(page, "P1")).to_contain_text("I stopped taking it")
    expect(_review_row(page, "P1")).not_to_contain_text("Skipped")
    expect(page.locator("main")).to_contain_text(MEDICINE)

    # "No" by mistake: the list is not shown, nor P1, and the review says they were not
    # asked; "Yes" again shows the list as it was typed.
    _change_m0(page, "No")
    for _screen in range(6):
        if page.url.endswith("/review"):
            break
        _primary(page)
    main = page.locator("main")
    expect(main).to_contain_text("Questions about taking medicine were not asked")
    expect(main).not_to_contain_text(MEDICINE)
    expect(page.locator("#p-P1")).to_have_count(0)
    _change_m0(page, "Yes")
    _primary(page)
    expect(page.locator("#M1-0-name")).to_have_value(MEDICINE)
    for _screen in range(12):
        if page.url.endswith("/review"):
            break
        _primary(page)
    expect(_review_row(page, "P1")).to_contain_text("I stopped taking it")
    with page.expect_navigation():
        page.locator("button[value=submit]").tap()

    answers = live_server.visit(invitation.ref)["answers"]
    assert json.loads(answers["M0"]) == "yes" and json.loads(answers["P1"]) == "stopped"
    assert json.loads(answers["M1"])[0]["name"] == MEDICINE

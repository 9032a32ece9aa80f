"""The standard measures (PHQ-9, GAD-7) in LHC-Forms, NLM's form renderer (the set-up of
``test_lhc_forms.py``: its built files from tests/fhir_validator/node_modules, served on
loopback, Debian's Chromium): the Questionnaire as the API serves it shows each measure's
published stem and items once, with the official answers and their scores; a sent
visit's response with both measures answered merges in and reads back whole.

Needs Chromium and `npm ci --prefix tests/fhir_validator`; without them the test skips,
unless PATIENTAPP_REQUIRE_BROWSER=1 (set in CI) makes that a failure.
"""

from __future__ import annotations

import pytest

from patientapp.questionnaire import model as questionnaire
from tests.browser import test_lhc_forms as lhc
from tests.browser.test_lhc_forms import READ_BACK, SEEN, _answers, _item, _read, _render, _texts
from tests.unit.test_fhir_measures import answered_visit

pytestmark = pytest.mark.browser
# LHC-Forms on its page, as test_lhc_forms.py sets it up (its fixtures, by name).
lforms, lforms_server, form_page = lhc.lforms, lhc.lforms_server, lhc.form_page

DEFINITION = questionnaire.default()


@pytest.fixture
def measured(app, clock) -> tuple[dict, dict]:
    """The Questionnaire and the response of a sent visit with both measures answered."""
    answered_visit(app, clock)
    token = lhc._token(app)
    client = app.test_client()
    found = _read(client, token, "/api/fhir/Questionnaire/reflection")
    bundle = _read(client, token, "/api/fhir/QuestionnaireResponse")
    [response] = [entry["resource"] for entry in bundle["entry"]]
    return found, response


def test_each_measure_reads_in_its_published_words(form_page, measured):
    found, _response = measured
    _render(form_page, found)
    seen = form_page.evaluate(SEEN)
    for measure in DEFINITION.instruments:
        english = measure.wordings["en"]
        assert seen.count(english.stem) == 1, measure.id
        prompts = dict(_texts(found["item"], []))
        for member in measure.items:
            if not member.asked_as:
                text = english.items[member.number - 1]
                assert prompts[member.id] == text
                assert seen.count(text) == 1, member.id
        first = next(m for m in measure.items if not m.asked_as)
        shown = [
            " ".join(label.inner_text().split())
            for label in _item(form_page, first.id).locator("label:has(input[type=radio])").all()
            if label.is_visible()
        ]
        # LHC-Forms shows each answer's ordinalValue after its words.
        assert shown == [
            f"{text} - {answer.score}"
            for text, answer in zip(english.scale, measure.scale, strict=True)
        ]
    # S1 (PHQ-9 item 9) keeps its safety screen's words, with no score beside them.
    s1 = [
        " ".join(label.inner_text().split())
        for label in _item(form_page, "S1").locator("label:has(input[type=radio])").all()
        if label.is_visible()
    ]
    assert s1 == ["Not at all", "Several days", "More than half the days", "Nearly every day"]
    assert form_page.outside == [], "a request left the machine"
    assert form_page.errors == []


def test_a_visit_with_both_measures_merges_in_and_reads_back_whole(form_page, measured):
    found, response = measured
    _render(form_page, found, response)
    sent = _answers(response["item"])
    measured_answers = [a for a in sent if "/PHQ9_" in a[0] or "/GAD7_" in a[0]]
    assert len(measured_answers) == 15
    assert {value[1] for _, value in measured_answers} == {"http://loinc.org"}
    read = form_page.evaluate(READ_BACK)
    assert _answers(read["item"]) == sent
    checked = _item(form_page, "GAD7_1").locator("label:has(input:checked)").inner_text()
    assert checked.strip() == "Nearly every day - 3"
    assert form_page.outside == [], "a request left the machine"
    assert form_page.errors == []

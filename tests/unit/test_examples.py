"""The example answers shared by the demo, the tests and the benchmark stay true to the app."""

from __future__ import annotations

import pytest

from patientapp.cli import examples
from patientapp.db import storage
from patientapp.questionnaire import model as questionnaire
from tests.conftest import finish_visit

STORED = [name for name in dir(examples) if name.isupper() and not name.endswith("_FORM")]


def test_the_form_example_is_stored_as_the_stored_example(app, db):
    """The benchmark prepares visits from LOWER_THE_DOSE and posts LOWER_THE_DOSE_FORM:
    the pages must turn the one into the other exactly."""
    invitation = finish_visit(app, examples.LOWER_THE_DOSE_FORM)
    stored, _in_person = storage.answers_for(db, invitation.visit_id)
    assert stored == examples.LOWER_THE_DOSE


@pytest.mark.parametrize("name", STORED)
def test_stored_examples_name_only_questionnaire_items(name):
    item_ids = [item.id for section in questionnaire.default().sections for item in section.items]
    assert set(getattr(examples, name)) <= set(item_ids)


def test_by_step_splits_answers_as_the_steps_save_them():
    steps = examples.by_step(examples.IN_PROGRESS, questionnaire.default())
    assert list(steps) == list(range(1, 11))
    assert steps[1] == {"T1": ["worried"], "T2": "Can I stop before my exams?"}
    assert steps[3] == {"P1": None, "P2": None, "P3": None}

"""The table of item types: each type has its macro, and the definition is checked per type."""

from __future__ import annotations

import pytest

from patientapp.questionnaire import model as questionnaire
from patientapp.questionnaire.types import TYPES

ITEM = '[[sections.items]]\nid="A"\nprompt="p"\nshort="s"\n'


def test_every_type_has_its_macro(app):
    macros = app.jinja_env.get_template("patient/_item_types.html").module
    for item_type in TYPES.values():
        assert callable(getattr(macros, item_type.macro, None)), item_type.name


def test_every_key_a_type_takes_is_an_item_field():
    fields = set(questionnaire.Item.__dataclass_fields__) - {"section_id"}
    for item_type in TYPES.values():
        assert item_type.allowed_keys <= fields, item_type.name


def test_every_item_of_the_shipped_questionnaire_names_a_known_type():
    for item in questionnaire.default().items.values():
        assert item.item_type is TYPES[item.type]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('type="scale"\nmin=0\nmax=4\nmax_length=3\n', r"unknown keys \['max_length'\]"),
        (
            'type="text"\nmax_length=3\nchoices=[{id="a",label="A"}]\n',
            r"unknown keys \['choices'\]",
        ),
        (
            'type="single"\nmax_rows=2\nchoices=[{id="a",label="A"}]\n',
            r"unknown keys \['max_rows'\]",
        ),
        ('type="medlist"\nchoices=[{id="a",label="A"}]\n', "type 'medlist' needs max_length"),
    ],
)
def test_a_key_another_type_takes_is_refused(tmp_path, extra, message):
    path = tmp_path / "q.toml"
    path.write_text(f'version = "x"\n[[sections]]\nid = "s"\ntitle = "S"\n{ITEM}{extra}')
    with pytest.raises(questionnaire.DefinitionError, match=message):
        questionnaire.load(path)


# A sample stored answer of each type, for the tests that walk every type.
SAMPLES = {
    "single": lambda item: item.choices[0].id,
    "multi": lambda item: [c.id for c in item.choices[:2]],
    "scale": lambda item: item.max,
    "text": lambda item: "A few words",
    "medlist": lambda item: [
        {"name": "Sertraline", "feeling": item.choices[0].id},
        {"name": "Something else", "feeling": None},
    ],
    "yesno_text": lambda item: {"choice": item.choices[0].id, "text": "Some words"},
}
TYPE_METHODS = ("screen_rows", "csv_columns", "csv_cells", "fhir_question", "fhir_answers")


def _item_of(type_name: str) -> questionnaire.Item:
    definition = questionnaire.default()
    return next(item for item in definition.items.values() if item.type == type_name)


def test_every_type_gives_its_screen_rows_csv_and_fhir_shapes(app):
    """Exports, FHIR and the screens ask the type: each one answers, and its CSV cells
    fill exactly its CSV columns."""
    from patientapp.exports import csv as exports
    from patientapp.exports import fhir
    from patientapp.patient import forms as patient_forms

    assert set(SAMPLES) == set(TYPES), "a new type needs a sample answer here"
    with app.test_request_context():
        for name, item_type in TYPES.items():
            for method in TYPE_METHODS:
                assert callable(getattr(item_type, method, None)), (name, method)
            item = _item_of(name)
            value = SAMPLES[name](item)
            columns = item_type.csv_columns(item)
            assert columns[0] == item.id, name
            assert len(item_type.csv_cells(item, value, exports._label)) == len(columns), name
            assert item_type.screen_rows(item, patient_forms.Measures) > 0, name
            question = item_type.fhir_question(item, fhir.Build())
            assert question["linkId"] == item.id, name
            answers = item_type.fhir_answers(item, value, "en", fhir.Build())
            assert answers, name
            assert {a["linkId"] for a in answers} == {item.id}, name


def test_a_type_without_a_fhir_mapping_is_refused():
    """A new type that has not said how it maps to FHIR is not sent half-described."""
    from patientapp.exports import fhir
    from patientapp.questionnaire.types import ItemType

    item = _item_of("text")
    with pytest.raises(ValueError, match="no FHIR mapping"):
        ItemType().fhir_question(item, fhir.Build())
    with pytest.raises(ValueError, match="no FHIR mapping"):
        ItemType().fhir_answers(item, "x", "", fhir.Build())

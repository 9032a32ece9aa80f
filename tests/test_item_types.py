"""The table of item types: each type has its macro, and the definition is checked per type."""

from __future__ import annotations

import pytest

from patientapp import questionnaire
from patientapp.item_types import TYPES

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

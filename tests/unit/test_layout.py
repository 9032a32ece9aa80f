"""The summary layout is declared with the questionnaire ([summary] in questionnaire.toml)
and checked at load: every item shows on the summary exactly once, so a new item can
never be stored and exported yet missing from what the psychiatrist reads."""

from __future__ import annotations

from collections import Counter

import pytest

import patientapp
from patientapp.questionnaire import model as questionnaire
from patientapp.summary import view as summary_view
from tests.conftest import FULL_ANSWERS, finish_visit
from tests.web.staff.test_staff import summary_in_text, summary_on_page

SHIPPED = questionnaire.DEFINITION_PATH.read_text(encoding="utf-8")
TODAY = 'today = ["R3", "T1", "P3"]'
MEDICINES = 'items = ["M0", "stance", "M2", "M1", "M3", "M5", "M6"]'
STANCE = 'stance = { need = "M4", worries = "M5" }'
NEXT_SECTION = '\n[[sections]]\nid = "medicines"'
# A new free-text item at the end of the Today screen.
T9 = """
  [[sections.items]]
  id = "T9"
  type = "text"
  max_length = 200
  short = "Anything else for today"
  prompt = "Is there anything else your psychiatrist should know today?"
"""


def definition(tmp_path, *, today: str = TODAY, medicines: str = MEDICINES, stance: str = STANCE):
    """The shipped definition with T9 added to the Today screen and [summary] edited."""
    for part in (NEXT_SECTION, TODAY, MEDICINES, STANCE):
        assert SHIPPED.count(part) == 1, part
    text = SHIPPED.replace(NEXT_SECTION, T9 + NEXT_SECTION).replace(TODAY, today)
    text = text.replace(MEDICINES, medicines).replace(STANCE, stance)
    path = tmp_path / "questionnaire.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_layout_places_every_item_exactly_once():
    q = questionnaire.default()
    placed = Counter(item_id for item_id, _where in q.layout.placements())
    # A standard measure's items show as its score on the Measures line, not as rows.
    assert placed == Counter(i for i in q.item_ids if not q.items[i].instrument)
    # The summary as it has always been laid out.
    layout = q.layout
    assert (layout.safety, layout.agenda, layout.today) == ("S1", "T2", ("R3", "T1", "P3"))
    assert (layout.stance.need, layout.stance.worries) == ("M4", "M5")
    assert [(b.title, b.items) for b in layout.blocks] == [
        ("Medicines", ("M0", "stance", "M2", "M1", "M3", "M5", "M6")),
        ("Patterns", ("P1", "P2")),
        ("Family, culture, past treatment", ("F1", "F2", "F3")),
        ("Meaning and hopes", ("W1", "W3", "W2", "H1", "H2")),
        ("Relationship", ("R1", "R4", "R2", "R5")),
    ]


def test_every_block_title_is_marked_for_translation():
    titles = [block.title for block in questionnaire.default().layout.blocks]
    assert sorted(titles) == sorted(summary_view.BLOCK_TITLES)


def test_an_item_placed_nowhere_is_refused_at_load(tmp_path):
    with pytest.raises(questionnaire.DefinitionError, match=r"^item T9: placed nowhere"):
        questionnaire.load(definition(tmp_path))


def test_an_item_placed_nowhere_stops_the_app(tmp_path, monkeypatch):
    path = definition(tmp_path)
    monkeypatch.setattr(questionnaire, "default", lambda: questionnaire.load(path))
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path / "instance"))
    with pytest.raises(questionnaire.DefinitionError, match="T9"):
        patientapp.create_app(
            {"TESTING": True, "SECRET_KEY": "x", "DATABASE": str(tmp_path / "db.sqlite")}
        )


@pytest.mark.parametrize(
    ("today", "medicines", "message"),
    [
        # T9 in Today and in Medicines.
        (
            'today = ["R3", "T1", "P3", "T9"]',
            MEDICINES.replace('"M6"', '"M6", "T9"'),
            r"^item T9: placed twice on the summary, in \[summary\] today and block 'Medicines'",
        ),
        # M2 in Today too.
        ('today = ["R3", "T1", "P3", "T9", "M2"]', MEDICINES, r"^item M2: placed twice"),
        # The stance row places M4: M4 named as well is a second place.
        ('today = ["R3", "T1", "P3", "T9", "M4"]', MEDICINES, r"^item M4: placed twice"),
    ],
)
def test_an_item_placed_twice_is_refused_at_load(tmp_path, today, medicines, message):
    with pytest.raises(questionnaire.DefinitionError, match=message):
        questionnaire.load(definition(tmp_path, today=today, medicines=medicines))


WITH_T9 = 'today = ["R3", "T1", "P3", "T9"]'


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        (
            {"today": 'today = ["R3", "T1", "P3", "T9", "Z9"]'},
            r"^\[summary\] today: unknown item 'Z9'",
        ),
        (
            {"today": WITH_T9, "medicines": MEDICINES.replace('"M6"', '"M6", "Z9"')},
            r"^\[summary\] block 'Medicines': unknown item 'Z9'",
        ),
        (
            {"today": WITH_T9, "stance": STANCE.replace('"M5"', '"Z9"')},
            r"^\[summary\] stance: unknown item 'Z9'",
        ),
        (
            {"today": WITH_T9, "stance": STANCE.replace('"M4"', '"Z9"')},
            r"^\[summary\] block 'Medicines' \(the stance row\): unknown item 'Z9'",
        ),
    ],
)
def test_a_placed_id_that_is_no_item_is_refused_at_load(tmp_path, changed, message):
    with pytest.raises(questionnaire.DefinitionError, match=message):
        questionnaire.load(definition(tmp_path, **changed))


def test_a_stance_row_needs_its_declaration(tmp_path):
    path = definition(tmp_path, today=WITH_T9, stance="")
    with pytest.raises(questionnaire.DefinitionError, match="places the stance row, but"):
        questionnaire.load(path)


def test_the_definition_with_t9_placed_once_loads(tmp_path):
    q = questionnaire.load(definition(tmp_path, today=WITH_T9))
    assert q.layout.today == ("R3", "T1", "P3", "T9")
    placed = Counter(i for i, _where in q.layout.placements())
    assert placed == Counter(i for i in q.item_ids if not q.items[i].instrument)


@pytest.fixture
def with_t9_in_today(tmp_path, monkeypatch):
    """The app runs on the shipped definition plus T9, placed as the last Today row."""
    q = questionnaire.load(definition(tmp_path, today=WITH_T9))
    monkeypatch.setattr(questionnaire, "default", lambda: q)
    return q


def test_an_item_placed_in_today_shows_on_the_page_and_in_the_text(
    with_t9_in_today, app, psychiatrist
):
    words = "I moved house last month."
    answers = {**FULL_ANSWERS, 1: {**FULL_ANSWERS[1], "T9": words}}
    invitation = finish_visit(app, answers)
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    text = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary.txt").get_data(
        as_text=True
    )
    page = summary_on_page(html)
    # The last Today row, after R3, T1 and P3; the export says what the page says. No
    # language tag: the reader reads English, the language it was written in (v3).
    assert page["today"][-1] == f"“{words}”"
    assert f"\nAnything else for today: “{words}”\n" in text
    assert summary_in_text(text)["today"] == page["today"]
    assert text.count(words) == 1

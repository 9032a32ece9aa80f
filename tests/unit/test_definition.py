"""The questionnaire definition holds every CONTENT.md id and nothing unknown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from patientapp.questionnaire import model as questionnaire

CONTENT = Path(__file__).resolve().parents[3] / "shared" / "CONTENT.md"
EXPECTED_IDS = [
    "T1",
    "T2",
    "M0",
    "M1",
    "M2",
    "M3",
    "M4",
    "M5",
    "M6",
    "P1",
    "P2",
    "P3",
    "F1",
    "F2",
    "F3",
    "W1",
    "W2",
    "W3",
    "H1",
    "H2",
    "R1",
    "R2",
    "R3",
    "R4",
    "R5",
    "S1",
]
# CONTENT.md version 2's new items and choices, exactly.
NEW_IN_V2 = {
    "M6": (
        "sleep",
        "movement",
        "people",
        "faith",
        "work_or_school",
        "creative",
        "outdoors",
        "therapy",
        "nothing_now",
    ),
    "P3": ("much_better", "better", "same", "worse", "much_worse"),
    "W3": ("life", "out_of_nowhere", "both", "not_sure"),
    "R4": ("no", "yes_talk", "yes_not_ready"),
    "R5": ("feel_better", "live_my_life", "keep_on_medicine", "control_me", "not_sure"),
}


# The standard measures' own items (CONTENT.md v3, "Optional validated measures"): GAD-7,
# then PHQ-9's items 1-8, asked just before S1, which is PHQ-9's item 9.
MEASURE_IDS = [f"GAD7_{n}" for n in range(1, 8)] + [f"PHQ9_{n}" for n in range(1, 9)]


def own_ids(q) -> list[str]:
    return [i for i in q.item_ids if not q.items[i].instrument]


def test_definition_has_exactly_the_content_ids():
    q = questionnaire.default()
    assert q.item_ids == EXPECTED_IDS[:-1] + MEASURE_IDS + ["S1"]
    assert own_ids(q) == EXPECTED_IDS


@pytest.mark.skipif(not CONTENT.exists(), reason="shared/CONTENT.md is not beside the repo")
def test_ids_match_content_md_table():
    text = CONTENT.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (?:\*\*)?([A-Z]\d)(?:\*\*)? \|", text, re.M)
    assert rows == own_ids(questionnaire.default())


def test_version_2_items_and_choices():
    q = questionnaire.default()
    for item_id, choice_ids in NEW_IN_V2.items():
        item = q.items[item_id]
        assert item.choice_ids == choice_ids, item_id
        assert item.type == ("multi" if item_id == "M6" else "single")
        assert item.since == "2026.2"
    exclusive = {(i.id, c.id) for i in q.items.values() for c in i.choices if c.exclusive}
    assert {("M6", "nothing_now"), ("F3", "first_treatment")} <= exclusive
    assert q.items["F3"].choice_ids[-1] == "first_treatment"
    # Visits answered under 2026.1 were never asked the new items (nor M0, new in 2026.3).
    assert q.asked_in("2026.1") == set(q.items) - set(NEW_IN_V2) - {"M0"} - set(MEASURE_IDS)


# CONTENT.md version 3: M0, taking medicine now; "no" leaves M1-M5 and P1 unasked.
NOT_ASKED_WITHOUT_MEDICINE = ("M1", "M2", "M3", "M4", "M5", "P1")


def test_version_3_asks_m0_first_in_medicines_and_no_hides_the_medicine_questions():
    q = questionnaire.default()
    assert q.version == "2026.4"
    m0 = q.items["M0"]
    assert (m0.type, m0.section_id, m0.since, m0.practices) == (
        "single",
        "medicines",
        "2026.3",
        (5,),
    )
    assert m0.choice_ids == ("yes", "no", "not_sure")
    assert q.sections[1].items[0] is m0
    assert m0.choice("no").hides == NOT_ASKED_WITHOUT_MEDICINE
    assert not m0.choice("yes").hides and not m0.choice("not_sure").hides
    assert [i.id for i in q.items.values() if i.decides] == ["M0"]
    both = ("gad7", "phq9")  # a visit offering both measures
    assert set(q.not_asked({"M0": "no"}, both)) == set(NOT_ASKED_WITHOUT_MEDICINE)
    assert set(q.not_asked({"M0": "no"}, both).values()) == {"M0"}
    for answers in ({}, {"M0": "yes"}, {"M0": "not_sure"}, {"M0": ["no"]}, {"M0": None}):
        assert q.not_asked(answers, both) == {}
    # Visits answered before 2026.3 were never asked M0: nothing of it shows for them.
    assert q.asked_in("2026.2") == set(q.items) - {"M0"} - set(MEASURE_IDS)
    assert q.asked_in("2026.3") == set(q.items) - set(MEASURE_IDS)
    assert q.asked_in("2026.4") == q.asked_in("") == q.asked_in("odd") == set(q.items)


HIDING = """
version = "x"
[[sections]]
id = "a"
title = "A"
  [[sections.items]]
  id = "A1"
  type = "single"
  prompt = "p"
  short = "s"
  choices = [{ id = "no", label = "No", hides = %s }]
  [[sections.items]]
  id = "A2"
  type = "text"
  prompt = "p"
  short = "s"
  max_length = 5
[[sections]]
id = "b"
title = "B"
  [[sections.items]]
  id = "B1"
  type = "text"
  prompt = "p"
  short = "s"
  max_length = 5
[summary]
today = ["A1", "A2", "B1"]
"""


@pytest.mark.parametrize(
    ("hides", "message"),
    [
        ('["Z9"]', "hides unknown item 'Z9'"),
        ('["A1"]', "can hide only later items"),
        ('["B1"]', "would hide all of section 'b'"),
    ],
)
def test_an_answer_hides_only_later_items_and_never_a_whole_section(tmp_path, hides, message):
    path = tmp_path / "q.toml"
    path.write_text(HIDING % hides)
    with pytest.raises(questionnaire.DefinitionError, match=message):
        questionnaire.load(path)
    path.write_text(HIDING % '["A2"]')
    assert questionnaire.load(path).not_asked({"A1": "no"}) == {"A2": "A1"}


def test_only_a_single_choice_can_hide_items(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text(HIDING.replace('type = "single"', 'type = "multi"') % '["A2"]')
    with pytest.raises(questionnaire.DefinitionError, match="only a single choice"):
        questionnaire.load(path)


def test_eight_sections_each_a_screen():
    sections = questionnaire.default().sections
    assert [s.id for s in sections] == [
        "today",
        "medicines",
        "going",
        "family",
        "meaning",
        "hopes",
        "relationship",
        "gad7",
        "phq9",
        "safety",
    ]


def test_types_match_the_blueprint():
    items = questionnaire.default().items
    assert items["T1"].type == "multi" and items["T1"].max == 3
    assert items["T2"].type == "text" and items["T2"].max_length == 300
    assert items["M1"].type == "medlist" and items["M1"].max_rows == 6
    assert items["M1"].max_length == 60
    assert (items["M4"].min, items["M4"].max) == (0, 10)
    assert (items["R1"].min, items["R1"].max) == (0, 4)
    assert items["F2"].type == "yesno_text"
    free_text = [i for i in items.values() if i.type in ("text", "yesno_text")]
    assert len(free_text) <= 4
    assert items["S1"].choice_ids == (
        "not_at_all",
        "several_days",
        "more_than_half",
        "nearly_every_day",
    )


def test_choice_ids_are_stable_lowercase_words():
    for item in questionnaire.default().items.values():
        for choice_id in item.choice_ids:
            assert re.fullmatch(r"[a-z][a-z_]*", choice_id), (item.id, choice_id)


BASE = """
version = "x"
[[sections]]
id = "s"
title = "S"
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '[[sections.items]]\nid="A"\ntype="single"\nprompt="p"\nshort="s"\nchoices=[{id="a",label="A"}]\n'
            '[[sections.items]]\nid="A"\ntype="text"\nprompt="p"\nshort="s"\nmax_length=3\n',
            "duplicate item id 'A'",
        ),
        (
            '[[sections.items]]\nid="A"\ntype="slider"\nprompt="p"\nshort="s"\n',
            "unknown type 'slider'",
        ),
        ('[[sections.items]]\nid="A"\ntype="single"\nprompt="p"\nshort="s"\n', "needs choices"),
        (
            '[[sections.items]]\nid="A"\ntype="single"\nprompt="p"\nshort="s"\n'
            'choices=[{id="a",label="A"},{id="a",label="B"}]\n',
            "duplicate choice id",
        ),
        ('[[sections.items]]\nid="A"\ntype="scale"\nprompt="p"\nshort="s"\n', "needs min and max"),
        (
            '[[sections.items]]\nid="A"\ntype="text"\nprompt="p"\nshort="s"\nmax_length=5\ncolour="red"\n',
            "unknown keys",
        ),
    ],
)
def test_bad_definitions_fail_clearly(tmp_path, extra, message):
    path = tmp_path / "q.toml"
    path.write_text(BASE + extra)
    with pytest.raises(questionnaire.DefinitionError, match=message):
        questionnaire.load(path)


def test_unreadable_definition_fails_clearly(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text("version = ")
    with pytest.raises(questionnaire.DefinitionError, match="cannot read questionnaire"):
        questionnaire.load(path)


def test_dangling_reference_stops_the_app(monkeypatch, tmp_path):
    from dataclasses import replace

    import patientapp

    real = questionnaire.default()
    m3 = real.items["M3"]
    broken_item = replace(m3, choices=tuple(c for c in m3.choices if c.id != "controls_me"))
    sections = tuple(
        replace(s, items=tuple(broken_item if i.id == "M3" else i for i in s.items))
        for s in real.sections
    )
    broken = replace(real, sections=sections, items={**real.items, "M3": broken_item})
    monkeypatch.setattr(questionnaire, "default", lambda: broken)
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path))
    with pytest.raises(questionnaire.DefinitionError, match="controls_me"):
        patientapp.create_app(
            {"TESTING": True, "SECRET_KEY": "x", "DATABASE": str(tmp_path / "db.sqlite")}
        )

"""Standard measures as data (CONTENT.md v3, "Optional validated measures"; issue 25):
PHQ-9 and GAD-7 read from their definition files, scored by their published rule."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import instruments, timing
from patientapp.questionnaire import model as questionnaire

Q = questionnaire.default()
PHQ9 = Q.instrument("phq9")
GAD7 = Q.instrument("gad7")
SCORE = {"not_at_all": 0, "several_days": 1, "more_than_half": 2, "nearly_every_day": 3}
BY_SCORE = {v: k for k, v in SCORE.items()}


def answers_totalling(instrument, total: int) -> dict[str, str]:
    """Answers to every item of the instrument adding up to ``total``."""
    found, left = {}, total
    for item in instrument.items:
        value = min(3, left)
        found[item.id] = BY_SCORE[value]
        left -= value
    assert left == 0
    return found


def test_the_shipped_instruments_are_phq9_and_gad7_with_their_loinc_codes():
    assert [i.id for i in Q.instruments] == ["gad7", "phq9"]
    assert (PHQ9.name, PHQ9.code.code, PHQ9.total_code.code, PHQ9.maximum) == (
        "PHQ-9",
        "44249-1",
        "44261-6",
        27,
    )
    assert (GAD7.name, GAD7.code.code, GAD7.total_code.code, GAD7.maximum) == (
        "GAD-7",
        "69737-5",
        "70274-6",
        21,
    )
    assert [i.code for i in PHQ9.items] == [
        "44250-9",
        "44255-8",
        "44259-0",
        "44254-1",
        "44251-7",
        "44258-2",
        "44252-5",
        "44253-3",
        "44260-8",
    ]
    assert [i.code for i in GAD7.items] == [
        "69725-0",
        "68509-9",
        "69733-4",
        "69734-2",
        "69735-9",
        "69689-8",
        "69736-7",
    ]
    assert [a.code for a in PHQ9.scale] == ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
    assert [a.score for a in PHQ9.scale] == [0, 1, 2, 3]


def test_phq9_item_9_is_the_safety_question_asked_once():
    ninth = PHQ9.items[-1]
    assert (ninth.number, ninth.id, ninth.asked_as) == (9, "S1", True)
    assert "PHQ9_9" not in Q.items  # never a second question
    assert [i.id for i in Q.items.values() if i.prompt == Q.items["S1"].prompt] == ["S1"]
    assert [i.id for i in Q.scored_by("S1")] == ["phq9"]
    # S1 keeps its own screen, right after PHQ-9's items 1-8.
    order = Q.item_ids
    assert order.index("S1") == order.index("PHQ9_8") + 1


@pytest.mark.parametrize(
    ("instrument", "bands"),
    [
        (
            "phq9",
            [
                (0, 4, "minimal"),
                (5, 9, "mild"),
                (10, 14, "moderate"),
                (15, 19, "moderately severe"),
                (20, 27, "severe"),
            ],
        ),
        ("gad7", [(0, 4, "minimal"), (5, 9, "mild"), (10, 14, "moderate"), (15, 21, "severe")]),
    ],
)
def test_every_boundary_of_every_band(instrument, bands):
    measure = Q.instrument(instrument)
    assert [(b.low, b.high, b.label) for b in measure.bands] == bands
    for low, high, label in bands:
        for total in {low, high}:
            score = measure.score(answers_totalling(measure, total))
            assert (score.total, score.band.label) == (total, label)
            assert not score.prorated and score.answered == len(measure.items)


def test_a_skipped_or_held_item_gives_no_total_without_a_prorating_rule():
    full = answers_totalling(PHQ9, 12)
    assert PHQ9.prorate_max_missing == 0 and GAD7.prorate_max_missing == 0
    skipped = {**full, "PHQ9_4": None}
    score = PHQ9.score(skipped)
    assert (score.total, score.band, score.skipped) == (None, None, ("PHQ9_4",))
    held = PHQ9.score(full, held={"PHQ9_2"})
    assert (held.total, held.held, held.skipped) == (None, ("PHQ9_2",), ())
    # S1 declined (skipped) leaves PHQ-9 without a total; its held value is never used.
    assert PHQ9.score({**full, "S1": None}).skipped == ("S1",)
    unreached = PHQ9.score({}, reached={"PHQ9_1"})
    assert unreached.total is None and len(unreached.not_reached) == 8


RULE = 'source = "test only: one missing item may be prorated"'
PRORATED = """
id = "toy"
name = "TOY-4"
title = "Toy"
code = { code = "x", display = "x" }
total = { code = "y", display = "y" }
copyright = "test only"
[scoring]
rule = "test only"
prorate = { max_missing = 1, source = "test only: one missing item may be prorated" }
[[scoring.bands]]
low = 0
high = 5
label = "low"
[[scoring.bands]]
low = 6
high = 8
label = "high"
[[scale]]
id = "a"
score = 0
code = "A"
[[scale]]
id = "b"
score = 2
code = "B"
[[items]]
id = "Y1"
code = "1"
[[items]]
id = "Y2"
code = "2"
[[items]]
id = "Y3"
code = "3"
[[items]]
id = "Y4"
code = "4"
[languages.en]
source = "test only"
stem = "How often?"
items = ["one", "two", "three", "four"]
scale = ["A", "B"]
"""


def test_a_published_prorating_rule_is_followed_and_said():
    toy = instruments.parse(tomllib.loads(PRORATED))
    # 2 + 2 + 0 answered of 4: mean 4/3, times 4 = 5.33 -> 5; one missing is allowed.
    score = toy.score({"Y1": "b", "Y2": "b", "Y3": "a"})
    assert (score.total, score.prorated, score.band.label) == (5, True, "low")
    # 2 + 2 of 4 with two missing: more than the rule allows, no total.
    assert toy.score({"Y1": "b", "Y2": "b"}).total is None
    # A held item counts as missing, and its value is never read.
    held = toy.score({"Y1": "b", "Y2": "b", "Y3": "b", "Y4": "a"}, held={"Y4"})
    assert (held.total, held.prorated) == (8, True)
    # A prorating rule must cite its source.
    bad = PRORATED.replace('source = "test only: one missing item may be prorated"', 'source = ""')
    with pytest.raises(instruments.InstrumentError, match="source"):
        instruments.parse(tomllib.loads(bad))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (
                'label = "high"',
                'label = "high"\n[[scoring.bands]]\nlow = 10\nhigh = 12\nlabel = "x"',
            ),
            "bands must run",
        ),
        (("high = 5", "high = 4"), "bands must run"),
        (('items = ["one", "two", "three", "four"]', 'items = ["one"]'), "4 item texts"),
        (('source = "test only"\nstem', 'source = " "\nstem'), "official text's source"),
        (("[languages.en]", "[languages.es]"), "original English"),
        (('id = "Y2"', 'id = "Y1"'), "each with its own id"),
        (('name = "TOY-4"', 'name = "TOY-4"\nextra = 1'), "unknown keys"),
        ((f"prorate = {{ max_missing = 1, {RULE} }}", "prorate = 2"), "prorate is false"),
        (("max_missing = 1", "max_missing = 0"), "max_missing >= 1"),
        (('id = "b"\nscore = 2', 'id = "a"\nscore = 2'), "each its own id"),
        (('id = "Y3"', 'id = "Y3"\nasked_as = "Z"'), "not both"),
        (('id = "Y4"', "id = 4"), "must be str"),
        (('name = "TOY-4"', "name = 4"), "'name' must be str"),
        (('code = { code = "x", display = "x" }', 'code = "x"'), "'code' must be dict"),
        (('scale = ["A", "B"]', 'scale = ["A", ""]'), "expected a list of texts"),
        (('scale = ["A", "B"]', 'scale = ["A"]'), "2 answer texts"),
    ],
)
def test_a_broken_instrument_definition_is_refused_with_its_reason(change, message):
    broken = PRORATED.replace(*change)
    assert broken != PRORATED
    with pytest.raises(instruments.InstrumentError, match=message):
        instruments.parse(tomllib.loads(broken))


def test_an_instrument_file_must_parse_and_carry_its_own_name(tmp_path):
    (tmp_path / "toy.toml").write_text(PRORATED, encoding="utf-8")
    assert instruments.load("toy", tmp_path).name == "TOY-4"
    (tmp_path / "other.toml").write_text(PRORATED, encoding="utf-8")
    with pytest.raises(instruments.InstrumentError, match="its id is 'toy', not 'other'"):
        instruments.load("other", tmp_path)
    (tmp_path / "bad.toml").write_text("id = ", encoding="utf-8")
    with pytest.raises(instruments.InstrumentError, match="cannot read instrument"):
        instruments.load("bad", tmp_path)


def test_a_definition_naming_a_missing_instrument_stops_the_app(tmp_path):
    text = questionnaire.DEFINITION_PATH.read_text(encoding="utf-8")
    path = tmp_path / "q.toml"
    path.write_text(text.replace('instruments = ["gad7", "phq9"]', 'instruments = ["gad7", "bdi"]'))
    with pytest.raises(questionnaire.DefinitionError, match="bdi"):
        questionnaire.load(path)


def test_a_third_instrument_is_a_new_file_not_code(tmp_path):
    """Adding a measure: a file in the instruments folder, named in [measures]."""
    folder = tmp_path / "instruments"
    folder.mkdir()
    for name in ("gad7", "phq9"):
        (folder / f"{name}.toml").write_bytes(
            (instruments.INSTRUMENTS_DIR / f"{name}.toml").read_bytes()
        )
    (folder / "toy.toml").write_text(PRORATED, encoding="utf-8")
    text = questionnaire.DEFINITION_PATH.read_text(encoding="utf-8")
    path = tmp_path / "q.toml"
    path.write_text(text.replace('["gad7", "phq9"]', '["toy", "gad7", "phq9"]'))
    q = questionnaire.load(path, folder)
    assert [s.id for s in q.sections][-4:] == ["toy", "gad7", "phq9", "safety"]
    assert q.items["Y1"].instrument == "toy" and q.items["Y1"].intro == "How often?"
    assert set(q.not_asked({})) >= {"Y1", "Y2", "Y3", "Y4"}
    assert "Y1" not in q.not_asked({}, ("toy",))


def test_asked_as_must_name_an_item_with_the_same_answers(tmp_path):
    folder = tmp_path / "instruments"
    folder.mkdir()
    (folder / "gad7.toml").write_bytes((instruments.INSTRUMENTS_DIR / "gad7.toml").read_bytes())
    phq9 = (instruments.INSTRUMENTS_DIR / "phq9.toml").read_text(encoding="utf-8")
    (folder / "phq9.toml").write_text(phq9.replace('asked_as = "S1"', 'asked_as = "R2"'))
    with pytest.raises(questionnaire.DefinitionError, match="not the scale's"):
        questionnaire.load(questionnaire.DEFINITION_PATH, folder)


def test_only_english_has_an_official_text_and_it_is_the_published_wording():
    for measure in (PHQ9, GAD7):
        assert list(measure.wordings) == ["en"]
        assert measure.offered_in("en") and not measure.offered_in("vi")
        assert "phqscreeners.com" in measure.wordings["en"].source
        assert measure.wordings["en"].stem.startswith("Over the last 2 weeks, how often")
    assert PHQ9.wordings["en"].items[8] == (
        "Thoughts that you would be better off dead or of hurting yourself in some way"
    )
    assert GAD7.wordings["en"].items[0] == "Feeling nervous, anxious or on edge"


def test_no_catalog_ever_translates_a_measures_words():
    """No homemade translation of a validated instrument: none of its questions or
    answers is a message id in any catalog (only its heading and band labels are)."""
    root = Path(__file__).resolve().parents[2] / "translations"
    words = set()
    for measure in (PHQ9, GAD7):
        english = measure.wordings["en"]
        words |= {english.stem, *english.items}
    catalogs = [*root.glob("*/LC_MESSAGES/messages.po"), root / "messages.pot"]
    assert catalogs
    for path in catalogs:
        text = path.read_text(encoding="utf-8")
        for phrase in words:
            assert f'"{phrase}"' not in text, (path, phrase)


def test_a_measures_screens_agree_with_the_minutes_model():
    for measure in (PHQ9, GAD7):
        shown = [
            p
            for p in patient_forms.pages(Q.sections)
            if p.items[:1] and p.items[0].instrument == measure.id
        ]
        assert len(shown) == timing.measure_screens(measure)
        # Each screen within the height the other screens keep to.
        for page in shown:
            assert (
                sum(patient_forms.screen_rows(i) for i in page.items) <= patient_forms.SCREEN_ROWS
            )


def test_the_progress_counts_the_steps_the_visit_asks():
    from dataclasses import replace

    from patientapp.domain import visits
    from tests.unit.test_visits import a_visit

    def visit(offered):
        return replace(a_visit(), measures_offered=offered)

    safety = [s.id for s in Q.sections].index("safety") + 1
    assert visits.progress(visit(""), safety, Q) == (8, 8)
    assert visits.progress(visit("phq9"), safety, Q) == (9, 9)
    assert visits.progress(visit("gad7 phq9"), safety, Q) == (10, 10)
    assert visits.progress(visit("phq9"), 8, Q) == (7, 9)  # GAD-7's step is not its own

"""Unit tests for the pure summary logic (flags, stance, changes, references)."""

import copy
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from patientapp.questionnaire import model as questionnaire
from patientapp.summary import rules as summary
from patientapp.summary.rules import (
    LATER_WORRY_PHRASES,
    N_,
    REFERENCED,
    REFERENCED_TYPES,
    SAFETY_ENDORSED,
    STANCE_LABELS,
    Change,
    ChoiceRef,
    Quote,
    all_flags,
    changes,
    check_references,
    is_answered,
    safety_status,
    skipped_items,
    stance,
    top_flags,
    worries,
)

# Every item answered, nothing fires: each test changes only what it is about.
QUIET = {
    "T1": ["calm"],
    "T2": "My sleep",
    "M0": "yes",
    "M1": [{"name": "sertraline", "feeling": "helping"}],
    "M2": "positive",
    "M3": ["helper"],
    "M4": 4,
    "M5": ["none"],
    "M6": ["sleep"],
    "P1": "as_prescribed",
    "P2": ["never"],
    "P3": "same",
    "F1": ["supportive"],
    "F2": {"choice": "no", "text": ""},
    "F3": ["helped_a_lot"],
    "W1": ["stress"],
    "W2": "takes_edge",
    "W3": "not_sure",
    "H1": "I could work again",
    "H2": ["none"],
    "R1": 3,
    "R2": "together",
    "R3": ["nothing"],
    "R4": "no",
    "R5": "feel_better",
    "S1": "not_at_all",
}

# Every non-safety flag fires.
LOUD = {
    **QUIET,
    "M4": 8,
    "M5": ["side_effects", "dependent"],
    "P1": "stopped",
    "P2": ["felt_better"],
    "P3": "much_worse",
    "M3": ["controls_me"],
    "R1": 0,
    "F1": ["against"],
    "F3": ["pressured"],
    "W1": ["body_chemistry"],
    "H2": ["more_expected"],
    "W3": "life",
}

FLAG_ORDER = [
    "hard_to_say",
    "ambivalence",
    "self_adjusting",
    "stops_at_recovery",
    "life_harder",
    "control",
    "family_culture",
    "past_treatment_hurt",
    "biology_only",
    "worries_getting_better",
    "feelings_as_signals",
]

SUMMARY_PATH = summary.__file__
SKIP = object()  # marks an item to delete from the answers


def answers_with(base=QUIET, **changes_):
    answers = copy.deepcopy(base)
    for key, value in changes_.items():
        if value is SKIP:
            answers.pop(key, None)
        else:
            answers[key] = value
    return answers


def fired(answers, held=()):
    return [f.id for f in all_flags(answers, held)]


def flag(answers, flag_id):
    return next(f for f in all_flags(answers) if f.id == flag_id)


def placeholders(template):
    return set(re.findall(r"%\((\w+)\)s", template))


# --- flags fire at their boundaries ------------------------------------------------------


def test_quiet_answers_fire_nothing():
    assert all_flags(QUIET) == []


def test_no_answers_fire_nothing():
    assert all_flags({}) == []


def test_loud_answers_fire_every_flag_in_priority_order():
    assert fired(LOUD) == FLAG_ORDER
    assert [f.priority for f in all_flags(LOUD)] == list(range(1, 12))


# Each condition alone, with everything else quiet.
FIRES = [
    # HARD TO SAY: R1 <= 1, or something about their care was hard to say
    ({"R1": 0}, "hard_to_say"),
    ({"R1": 1}, "hard_to_say"),
    ({"R4": "yes_talk"}, "hard_to_say"),
    ({"R4": "yes_not_ready"}, "hard_to_say"),
    # AMBIVALENCE: need >= 6 with 2+ worries, a mixed feeling or a getting-better worry
    ({"M4": 6, "M5": ["side_effects", "dependent"]}, "ambivalence"),
    ({"M4": 10, "M5": ["side_effects", "dependent", "cost_access"]}, "ambivalence"),
    ({"M4": 6, "M2": "mixed"}, "ambivalence"),
    ({"M4": 6, "M2": "mixed", "M5": SKIP}, "ambivalence"),
    # SELF-ADJUSTING
    ({"P1": "chose_to_skip"}, "self_adjusting"),
    ({"P1": "stopped"}, "self_adjusting"),
    # STOPS AT RECOVERY
    ({"P2": ["felt_better"]}, "stops_at_recovery"),
    ({"P2": ["side_effects", "felt_better"]}, "stops_at_recovery"),
    # LIFE HARDER
    ({"P3": "worse"}, "life_harder"),
    ({"P3": "much_worse"}, "life_harder"),
    # CONTROL
    ({"M3": ["controls_me"]}, "control"),
    ({"M3": ["helper", "punishment"]}, "control"),
    ({"M5": ["being_controlled"]}, "control"),
    ({"R2": "mostly_me"}, "control"),
    ({"R5": "control_me"}, "control"),
    # FAMILY / CULTURE
    ({"F1": ["against"]}, "family_culture"),
    ({"F1": ["supportive", "dont_know"]}, "family_culture"),
    ({"F1": ["bad_experience"]}, "family_culture"),
    ({"F2": {"choice": "yes", "text": ""}}, "family_culture"),
    ({"F2": {"choice": "yes", "text": "We pray together."}}, "family_culture"),
    # PAST TREATMENT HURT
    ({"F3": ["pressured"]}, "past_treatment_hurt"),
    ({"F3": ["not_listened"]}, "past_treatment_hurt"),
    ({"F3": ["not_listened", "pressured"]}, "past_treatment_hurt"),
    # BIOLOGY ONLY: chemistry the single cause; v3: or a chemical fix for feelings out
    # of nowhere while no life cause is named
    ({"W1": ["body_chemistry"]}, "biology_only"),
    ({"W2": "fixes_chemical", "W3": "out_of_nowhere", "W1": ["dont_know"]}, "biology_only"),
    ({"W2": "fixes_chemical", "W3": "out_of_nowhere", "W1": ["spiritual"]}, "biology_only"),
    ({"W2": "fixes_chemical", "W3": "out_of_nowhere", "W1": SKIP}, "biology_only"),
    # WORRIES ABOUT GETTING BETTER (v3): any worry, whatever M4 says
    ({"H2": ["more_expected"]}, "worries_getting_better"),
    ({"H2": ["losing_support", "not_myself"], "M4": 0}, "worries_getting_better"),
    ({"H2": ["relationships_change"], "M4": SKIP}, "worries_getting_better"),
    # FEELINGS AS SIGNALS (v3): bad feelings tied to life
    ({"W3": "life"}, "feelings_as_signals"),
    ({"W3": "both"}, "feelings_as_signals"),
]


@pytest.mark.parametrize(("changed", "flag_id"), FIRES)
def test_flag_fires(changed, flag_id):
    assert fired(answers_with(**changed)) == [flag_id]


@pytest.mark.parametrize(
    "changed",
    [
        # HARD TO SAY just above its threshold, or nothing hard to say
        {"R1": 2},
        {"R1": 4},
        {"R1": SKIP},
        {"R4": "no"},
        {"R4": SKIP, "R1": SKIP},
        # AMBIVALENCE just below its thresholds
        {"M4": 5, "M5": ["side_effects", "dependent"]},
        {"M4": 5, "M2": "mixed"},
        {"M4": 6, "M5": ["side_effects"]},
        {"M4": 6, "M5": ["side_effects", "none"]},
        {"M4": 6, "M5": ["none"], "H2": ["none"], "M2": "unsure"},
        {"M4": 6, "M2": "negative"},
        {"M4": SKIP, "M5": ["side_effects", "dependent"], "M2": "mixed", "H2": ["none"]},
        {"M4": True, "M2": "mixed"},
        {"M4": 10, "M5": SKIP, "M2": SKIP, "H2": SKIP},
        # SELF-ADJUSTING: other ways of taking it, or skipped
        {"P1": "missed_by_accident"},
        {"P1": "not_taking"},
        {"P1": SKIP},
        {"P2": ["someone_told_me"]},
        # STOPS AT RECOVERY
        {"P2": ["side_effects", "test_need"]},
        {"P2": SKIP},
        # LIFE HARDER: the same or better, or skipped
        {"P3": "same"},
        {"P3": "better"},
        {"P3": "much_better"},
        {"P3": SKIP},
        # CONTROL
        {"M3": ["crutch", "reminder", "safety_net"]},
        {"M5": ["side_effects", "others_think"]},
        {"R2": "psychiatrist_decides"},
        {"R5": "keep_on_medicine"},
        {"R5": "not_sure"},
        {"M3": SKIP, "M5": SKIP, "R2": SKIP, "R5": SKIP},
        # FAMILY / CULTURE
        {"F1": ["prefer_other", "good_experience"]},
        {"F2": {"choice": "no", "text": "Nothing really."}},
        {"F2": {"choice": None, "text": "Something I wrote"}},
        {"F1": SKIP, "F2": SKIP},
        # PAST TREATMENT HURT
        {"F3": ["bad_side_effects", "other_healers"]},
        {"F3": ["first_treatment"]},
        {"F3": SKIP},
        # BIOLOGY ONLY: body chemistry with another cause, or the v3 pattern one part short
        {"W1": ["body_chemistry", "stress"]},
        {"W1": ["dont_know"]},
        {"W1": SKIP},
        {"W2": "fixes_chemical", "W3": "out_of_nowhere", "W1": ["dont_know", "stress"]},
        {"W2": "fixes_chemical", "W3": "out_of_nowhere", "W1": ["relationships"]},
        {"W2": "fixes_chemical", "W3": "out_of_nowhere", "W1": ["past_experiences"]},
        {"W2": "fixes_chemical", "W3": "not_sure", "W1": ["dont_know"]},
        {"W2": "takes_edge", "W3": "out_of_nowhere", "W1": ["dont_know"]},
        {"W2": SKIP, "W3": "out_of_nowhere", "W1": ["dont_know"]},
        # WORRIES ABOUT GETTING BETTER: none of them, or skipped
        {"H2": ["none"]},
        {"H2": SKIP},
        # FEELINGS AS SIGNALS: out of nowhere, not sure, or skipped
        {"W3": "out_of_nowhere"},
        {"W3": "not_sure"},
        {"W3": SKIP},
    ],
)
def test_flag_does_not_fire(changed):
    assert fired(answers_with(**changed)) == []


@pytest.mark.parametrize(
    ("item_id", "flag_id"),
    [
        ("M4", "ambivalence"),
        ("P1", "self_adjusting"),
        ("P2", "stops_at_recovery"),
        ("P3", "life_harder"),
        ("M3", "control"),
        ("R1", "hard_to_say"),
        ("F1", "family_culture"),
        ("F3", "past_treatment_hurt"),
        ("W1", "biology_only"),
        ("H2", "worries_getting_better"),
        ("W3", "feelings_as_signals"),
    ],
)
def test_skipping_the_triggering_item_silences_its_flag(item_id, flag_id):
    assert flag_id in fired(LOUD)
    assert flag_id not in fired(answers_with(LOUD, **{item_id: SKIP}))


@pytest.mark.parametrize(("changed", "flag_id"), FIRES)
def test_an_item_held_for_in_person_never_fires(changed, flag_id):
    answers = answers_with(**changed)
    assert fired(answers, held=()) == [flag_id]
    # Holding the items that differ from the quiet answers silences the flag.
    triggers = {k for k in changed if changed[k] is not SKIP}
    assert fired(answers, held=triggers) == []
    assert summary.top_flags(answers, held=triggers) == []
    assert summary.also_noted(answers, limit=0, held=triggers) == []


def test_held_items_are_left_out_and_the_rest_still_fire():
    held = {"R1", "M4", "P1"}
    assert fired(LOUD, held=held) == [
        "stops_at_recovery",
        "life_harder",
        "control",
        "family_culture",
        "past_treatment_hurt",
        "biology_only",
        "worries_getting_better",
        "feelings_as_signals",
    ]


@pytest.mark.parametrize(
    "changed",
    [
        {"M4": 6, "H2": ["more_expected"]},
        {"M4": 6, "H2": ["losing_support"], "M5": SKIP, "M2": SKIP},
    ],
)
def test_a_worry_about_getting_better_weighs_in_ambivalence_and_fires_its_own(changed):
    assert fired(answers_with(**changed)) == ["ambivalence", "worries_getting_better"]


# --- v3 order: HARD TO SAY first, then converging evidence, then the rest ---------------

CONTROL_THREE = {"R5": "control_me", "M3": ["punishment"], "R2": "mostly_me"}


def test_three_answers_pointing_to_a_flag_put_it_before_the_rest():
    answers = answers_with(P1="stopped", P3="worse", **CONTROL_THREE)
    assert fired(answers) == ["control", "self_adjusting", "life_harder"]
    assert flag(answers, "control").evidence == 3


def test_two_answers_are_not_converging_evidence():
    answers = answers_with(P1="stopped", P3="worse", R5="control_me", M3=["punishment"])
    assert fired(answers) == ["self_adjusting", "life_harder", "control"]
    assert flag(answers, "control").evidence == 2


def test_hard_to_say_comes_first_even_before_converging_evidence():
    answers = answers_with(R4="yes_not_ready", P1="stopped", **CONTROL_THREE)
    assert fired(answers) == ["hard_to_say", "control", "self_adjusting"]
    assert [f.id for f in top_flags(answers)] == ["hard_to_say", "control", "self_adjusting"]


def test_the_control_patient_of_the_issue_gets_control_on_the_page_with_an_opener():
    # R5, M3 and R2 all speak of control: before v3 it fell to "Also noted".
    answers = answers_with(
        R1=1, M4=8, M5=["side_effects", "dependent"], P1="chose_to_skip", **CONTROL_THREE
    )
    assert [f.id for f in top_flags(answers)] == ["hard_to_say", "control", "ambivalence"]


@pytest.mark.parametrize(
    ("changed", "flag_id", "count"),
    [
        ({"R1": 0, "R4": "yes_talk"}, "hard_to_say", 2),
        ({"R1": 0}, "hard_to_say", 1),
        ({"M4": 7, "M5": ["side_effects", "dependent"], "M2": "mixed"}, "ambivalence", 3),
        ({"M4": 7, "M2": "mixed"}, "ambivalence", 2),
        ({"M4": 8, "M2": "mixed", "M5": ["side_effects"]}, "ambivalence", 3),  # one worry too
        ({"P1": "stopped", "P2": ["someone_told_me"]}, "self_adjusting", 2),
        ({"P2": ["felt_better"], "M5": ["dependent"]}, "stops_at_recovery", 2),
        ({"M3": ["controls_me", "punishment"]}, "control", 1),  # one answer, two choices
        ({"F1": ["against"], "F2": {"choice": "yes", "text": ""}}, "family_culture", 2),
        (
            {"W1": ["body_chemistry"], "W2": "fixes_chemical", "W3": "out_of_nowhere"},
            "biology_only",
            3,
        ),
        ({"W2": "fixes_chemical", "W3": "out_of_nowhere", "W1": SKIP}, "biology_only", 2),
    ],
)
def test_evidence_counts_the_different_answers_pointing_to_a_flag(changed, flag_id, count):
    assert flag(answers_with(**changed), flag_id).evidence == count


def test_safety_is_never_one_of_the_flags():
    assert all_flags(answers_with(S1="nearly_every_day")) == []


def test_flags_do_not_change_the_answers():
    answers = copy.deepcopy(LOUD)
    all_flags(answers, held={"M4"})
    assert answers == LOUD


# --- the cap of three and "also noted" ---------------------------------------------------


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 9, 20])
def test_top_flags_keeps_the_highest_priorities(limit):
    assert [f.id for f in top_flags(LOUD, limit=limit)] == FLAG_ORDER[:limit]
    assert [f.id for f in summary.also_noted(LOUD, limit=limit)] == FLAG_ORDER[limit:]


def test_top_flags_shows_three_by_default_and_names_every_other():
    assert summary.FLAG_CAP == 3
    assert [f.id for f in top_flags(LOUD)] == FLAG_ORDER[:3]
    assert [f.id for f in summary.also_noted(LOUD)] == FLAG_ORDER[3:]


def test_the_issue_patient_keeps_every_flag_on_the_page():
    # Hard to disagree, a mother who says pills are for the weak, once felt forced.
    answers = answers_with(
        R1=0,
        F2={"choice": "yes", "text": "My mother says pills are for the weak."},
        F3=["pressured"],
        M4=8,
        M5=["side_effects", "dependent"],
        P1="chose_to_skip",
        W1=["body_chemistry"],
    )
    assert [f.id for f in top_flags(answers)] == ["hard_to_say", "ambivalence", "self_adjusting"]
    assert [f.id for f in summary.also_noted(answers)] == [
        "family_culture",
        "past_treatment_hurt",
        "biology_only",
    ]


def test_top_flags_orders_lower_priorities_too():
    answers = answers_with(W1=["body_chemistry"], F3=["pressured"], P3="worse", F1=["dont_know"])
    assert [f.id for f in top_flags(answers)] == [
        "life_harder",
        "family_culture",
        "past_treatment_hurt",
    ]
    assert [f.id for f in summary.also_noted(answers)] == ["biology_only"]


def test_top_flags_with_fewer_flags_than_the_limit():
    assert [f.id for f in top_flags(answers_with(R2="mostly_me"))] == ["control"]
    assert summary.also_noted(answers_with(R2="mostly_me")) == []
    assert top_flags(QUIET) == []


# --- openers quote the patient's own answer ---------------------------------------------

WORRY = summary.WORRY_PHRASES_TO_PATIENT
LATER = summary.LATER_WORRY_PHRASES

OPENER_CASES = [
    ({"R1": 1}, "hard_to_say", {"rating": 1}, "%(rating)s out of 4"),
    ({"R1": 0}, "hard_to_say", {"rating": 0}, "It's fine to disagree"),
    ({"R4": "yes_talk"}, "hard_to_say", {}, "would like to talk about it"),
    ({"R4": "yes_talk", "R1": 0}, "hard_to_say", {}, "would like to talk about it"),
    ({"R4": "yes_not_ready"}, "hard_to_say", {}, "not ready"),
    ({"R4": "yes_not_ready", "R1": 0}, "hard_to_say", {}, "That's okay"),
    (
        {"M4": 7, "M5": ["side_effects", "dependent"]},
        "ambivalence",
        {"need": 7, "worries": (WORRY["side_effects"], WORRY["dependent"])},
        "worry about %(worries)s.",
    ),
    (
        {"M4": 6, "M5": ["cost_access"], "H2": ["more_expected"]},
        "ambivalence",
        {"need": 6, "worries": (WORRY["cost_access"],)},
        "worry about",
    ),
    (
        {"M4": 9, "H2": ["more_expected", "not_myself"]},
        "ambivalence",
        {"need": 9, "worries": (LATER["more_expected"], LATER["not_myself"])},
        "feeling better could mean",
    ),
    ({"M4": 6, "M2": "mixed"}, "ambivalence", {"need": 6}, "mixed feelings about taking it"),
    ({"P1": "chose_to_skip"}, "self_adjusting", {}, "chose to skip or change some"),
    ({"P1": "stopped"}, "self_adjusting", {}, "stopped taking your medicine. Many"),
    (
        {"P1": "stopped", "P2": ["someone_told_me"]},
        "self_adjusting",
        {},
        "someone once told you to stop",
    ),
    (
        {"P1": "chose_to_skip", "P2": ["cost", "someone_told_me"]},
        "self_adjusting",
        {},
        "change some of your medicine, and that someone once told you",
    ),
    ({"P2": ["cost", "felt_better"]}, "stops_at_recovery", {}, "when you felt better. What"),
    (
        {"P2": ["felt_better"], "M5": ["dependent"]},
        "stops_at_recovery",
        {},
        "becoming dependent on it",
    ),
    ({"P3": "worse"}, "life_harder", {}, "a little harder"),
    ({"P3": "much_worse"}, "life_harder", {}, "much harder"),
    (
        {"M3": ["punishment", "controls_me"], "M5": ["being_controlled"], "R2": "mostly_me"},
        "control",
        {},
        "something that controls you",
    ),
    ({"M3": ["punishment"], "M5": ["being_controlled"]}, "control", {}, "a punishment"),
    ({"M5": ["being_controlled"], "R2": "mostly_me"}, "control", {}, "being controlled"),
    ({"R2": "mostly_me"}, "control", {}, "mostly yourself"),
    ({"R5": "control_me"}, "control", {}, "control how you act"),
    (
        {"F1": ["against"], "F2": {"choice": "yes", "text": "  Mi familia prefiere la oración. "}},
        "family_culture",
        {"quote": Quote("Mi familia prefiere la oración")},
        "You wrote",
    ),
    (
        {"F1": ["dont_know"], "F2": {"choice": "no", "text": "They think pills are weak."}},
        "family_culture",
        {"quote": Quote("They think pills are weak")},
        "You wrote",
    ),
    (
        {"F2": {"choice": "yes", "text": "Is it a sin?"}},
        "family_culture",
        {"quote": Quote("Is it a sin?")},
        "You wrote",
    ),
    (
        {"F1": ["dont_know", "against"], "F2": {"choice": "yes", "text": "   "}},
        "family_culture",
        {},
        "are against your medicine",
    ),
    ({"F1": ["dont_know"]}, "family_culture", {}, "don't know you take medicine"),
    ({"F1": ["bad_experience"]}, "family_culture", {}, "bad experience with medicine"),
    ({"F2": {"choice": "yes", "text": ""}}, "family_culture", {}, "What would you like me"),
    ({"F3": ["pressured"]}, "past_treatment_hurt", {}, "pressured or forced"),
    ({"F3": ["not_listened"]}, "past_treatment_hurt", {}, "no one listened to you"),
    ({"W1": ["body_chemistry"]}, "biology_only", {}, "come from chemicals in your body or brain"),
    (
        {"W2": "fixes_chemical", "W3": "out_of_nowhere", "W1": ["dont_know"]},
        "biology_only",
        {},
        "balances your brain chemicals and that bad feelings mostly come for no clear reason",
    ),
    (
        {"H2": ["more_expected", "none"]},
        "worries_getting_better",
        {"worries": (LATER_WORRY_PHRASES["more_expected"],)},
        "Feeling better can bring its own worries.",
    ),
    (
        {"H2": ["losing_support", "relationships_change"]},
        "worries_getting_better",
        {
            "worries": (
                LATER_WORRY_PHRASES["losing_support"],
                LATER_WORRY_PHRASES["relationships_change"],
            )
        },
        "What would change for you?",
    ),
    ({"W3": "life"}, "feelings_as_signals", {}, "seem tied to what is going on in your life"),
    ({"W3": "both"}, "feelings_as_signals", {}, "are sometimes tied to what is going on"),
]


@pytest.mark.parametrize(("changed", "flag_id", "expected", "words"), OPENER_CASES)
def test_opener_carries_the_triggering_answer(changed, flag_id, expected, words):
    f = flag(answers_with(**changed), flag_id)
    assert f.kwargs == expected
    assert words in f.opener


OPENER_FLAGS = [flag(answers_with(**c), fid) for c, fid, _, _ in OPENER_CASES]


@pytest.mark.parametrize("f", OPENER_FLAGS, ids=lambda f: f.id)
def test_every_placeholder_is_supplied_and_every_param_used(f):
    assert placeholders(f.opener) == set(f.kwargs)
    formatted = f.opener % dict.fromkeys(f.kwargs, "x")
    assert "%" not in formatted


@pytest.mark.parametrize("f", OPENER_FLAGS, ids=lambda f: f.id)
def test_param_values_have_the_documented_types(f):
    for value in f.kwargs.values():
        if isinstance(value, tuple):
            assert value and all(isinstance(v, summary.Phrase) for v in value)
        else:
            assert type(value) in (Quote, int)


def test_no_opener_splices_a_choice_label():
    # Every opener is a whole sentence per trigger: only numbers, the patient's own words
    # and phrase forms written to read inside a sentence are put into it.
    for f in OPENER_FLAGS:
        assert not any(isinstance(v, ChoiceRef) for v in f.kwargs.values())


def test_not_ready_is_an_invitation_without_pressure():
    opener = flag(answers_with(R4="yes_not_ready"), "hard_to_say").opener
    assert "What happened?" not in opener and not opener.endswith("?")
    assert "okay" in opener


@pytest.mark.parametrize(
    ("written", "quoted"),
    [
        ("My mother says pills are for the weak.", "My mother says pills are for the weak"),
        ("  pills.  ", "pills"),
        ("They say no...", "They say no"),
        ("家人反对。", "家人反对"),
        ("Why me?", "Why me?"),
        ("Never!", "Never!"),
        ("...", "..."),
    ],
)
def test_a_quote_in_a_sentence_never_doubles_its_punctuation(written, quoted):
    assert summary.quote_in_sentence(written) == Quote(quoted)


def test_the_quote_sits_inside_the_sentence_before_its_own_full_stop():
    f = flag(answers_with(F2={"choice": "yes", "text": "Pills are weak."}), "family_culture")
    text = f.opener % {"quote": f.kwargs["quote"].text}
    assert "You wrote “Pills are weak” about your background" in text
    assert not re.search(r"[.!?][”\"]\.", text)


def test_phrases_cover_every_worry_choice():
    q = questionnaire.default()
    assert set(WORRY) == set(q.items["M5"].choice_ids) - {"none"}
    assert set(summary.WORRY_PHRASES) == set(WORRY)
    assert set(LATER) == set(q.items["H2"].choice_ids) - {"none"}
    for phrase in [*WORRY.values(), *LATER.values(), *summary.WORRY_PHRASES.values()]:
        assert phrase.context and phrase.text == phrase.text.lower()


def test_control_has_an_opener_for_each_kind_of_trigger():
    openers = {
        flag(answers_with(**c), "control").opener
        for c in (
            {"M3": ["controls_me"]},
            {"M3": ["punishment"]},
            {"M5": ["being_controlled"]},
            {"R2": "mostly_me"},
            {"R5": "control_me"},
        )
    }
    assert len(openers) == 5


def test_flag_fields_are_well_formed():
    flags = all_flags(LOUD)
    assert len({f.id for f in flags}) == len(flags)
    for f in flags:
        assert f.title and f.opener
        assert f.practices and all(1 <= p <= 7 for p in f.practices)


def test_flags_are_hashable():
    keys = {(f.id, f.opener, f.params, f.evidence) for f in OPENER_FLAGS}
    assert len(set(OPENER_FLAGS)) == len(keys)


def test_biology_only_opener_is_a_question_not_a_label():
    opener = flag(answers_with(W1=["body_chemistry"]), "biology_only").opener
    assert opener.endswith("?")
    assert "only" not in opener.lower()


def test_n_marker_returns_its_argument():
    assert N_("Ambivalence") == "Ambivalence"
    assert summary.NP_("ctx", "side effects") == summary.Phrase("ctx", "side effects")


# --- stance ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("need", "worry_list", "expected"),
    [
        (6, ["side_effects", "dependent"], "ambivalent"),
        (10, ["side_effects", "dependent", "not_myself"], "ambivalent"),
        (6, ["side_effects"], "accepting"),
        (6, ["none"], "accepting"),
        (6, ["side_effects", "none"], "accepting"),
        (5, ["side_effects", "dependent"], "doubtful"),
        (0, ["others_think", "cost_access"], "doubtful"),
        (5, ["side_effects"], "low_low"),
        (0, ["none"], "low_low"),
    ],
)
def test_stance_quadrants(need, worry_list, expected):
    assert stance(answers_with(M4=need, M5=worry_list)) == expected


@pytest.mark.parametrize(
    "changed",
    [
        {"M4": SKIP},
        {"M5": SKIP},
        {"M4": SKIP, "M5": SKIP},
        {"M5": []},
        {"M4": None},
    ],
)
def test_stance_is_unknown_when_an_item_was_skipped(changed):
    assert stance(answers_with(**changed)) is None
    assert summary.stance_parts(answers_with(**changed)) is None


@pytest.mark.parametrize("held", [{"M4"}, {"M5"}, {"M4", "M5"}])
def test_no_stance_when_a_part_is_held_for_in_person(held):
    answers = answers_with(M4=8, M5=["side_effects", "dependent"])
    assert stance(answers) == "ambivalent"
    assert stance(answers, held) is None
    assert summary.stance_parts(answers, held) is None


def test_stance_parts_name_need_and_worries_then_the_word():
    parts = summary.stance_parts(answers_with(M4=7, M5=["side_effects", "none", "dependent"]))
    phrases = summary.WORRY_PHRASES
    assert parts == summary.Stance(7, (phrases["side_effects"], phrases["dependent"]), "ambivalent")
    assert phrases["dependent"].text == "becoming dependent"
    assert STANCE_LABELS["ambivalent"] == "both high (ambivalent)"


@pytest.mark.parametrize(
    ("need", "worry_list", "word"),
    [
        (6, ["side_effects"], "high need, few worries (accepting)"),
        (6, ["side_effects", "dependent"], "both high (ambivalent)"),
        (5, ["side_effects", "dependent"], "low need, many worries (doubtful)"),
        (5, ["none"], "low need, few worries"),
    ],
)
def test_stance_words_at_both_sides_of_each_threshold(need, worry_list, word):
    parts = summary.stance_parts(answers_with(M4=need, M5=worry_list))
    assert STANCE_LABELS[parts.key] == word
    assert parts.need == need and len(parts.worries) == len(set(worry_list) - {"none"})


def test_every_stance_has_a_label():
    outcomes = {
        stance(answers_with(M4=n, M5=w))
        for n in (0, 10)
        for w in (["none"], ["cost", "side_effects"])
    }
    assert outcomes == set(STANCE_LABELS)
    assert all(STANCE_LABELS.values())


@pytest.mark.parametrize(
    ("worry_list", "expected"),
    [
        (["none"], ()),
        (["dependent", "side_effects"], ("dependent", "side_effects")),
        (["side_effects", "none"], ("side_effects",)),
        (SKIP, ()),
    ],
)
def test_worries_excludes_none_and_keeps_order(worry_list, expected):
    assert worries(answers_with(M5=worry_list)) == expected


# --- safety ------------------------------------------------------------------------------


@pytest.mark.parametrize("reached", [True, False])
@pytest.mark.parametrize("choice", SAFETY_ENDORSED)
def test_safety_endorsed(choice, reached):
    assert safety_status(answers_with(S1=choice), reached=reached) == "endorsed"


@pytest.mark.parametrize("reached", [True, False])
def test_safety_not_endorsed(reached):
    assert safety_status(answers_with(S1="not_at_all"), reached=reached) == "not_endorsed"


@pytest.mark.parametrize("value", [SKIP, None, ""])
@pytest.mark.parametrize(("reached", "expected"), [(True, "declined"), (False, "not_reached")])
def test_safety_skip_is_never_read_as_no(value, reached, expected):
    assert safety_status(answers_with(S1=value), reached=reached) == expected


def test_safety_endorsed_matches_the_questionnaire():
    choice_ids = questionnaire.default().items["S1"].choice_ids
    assert set(SAFETY_ENDORSED) == set(choice_ids) - {"not_at_all"}


# --- changes since last visit -----------------------------------------------------------


def test_no_previous_visit_means_no_changes():
    assert changes(LOUD, None) == []


def test_same_answers_mean_no_changes():
    assert changes(LOUD, copy.deepcopy(LOUD)) == []


@pytest.mark.parametrize(
    ("item_id", "before", "after"),
    [
        ("M4", 3, 4),
        ("M4", 5, 0),
        ("R1", 0, 4),
        ("M2", "negative", "unsure"),
        ("P3", "same", "worse"),
        ("P3", "much_worse", "better"),
    ],
)
def test_value_changes(item_id, before, after):
    found = changes(answers_with(**{item_id: after}), answers_with(**{item_id: before}))
    assert found == [Change(item_id, before, after, "changed")]


@pytest.mark.parametrize("item_id", ["M4", "R1", "M2", "P3"])
@pytest.mark.parametrize("skipped_in", ["current", "previous"])
def test_a_skip_is_not_a_change(item_id, skipped_in):
    current, previous = answers_with(), answers_with()
    (current if skipped_in == "current" else previous).pop(item_id)
    assert changes(current, previous) == []


def test_new_worries():
    found = changes(
        answers_with(M5=["side_effects", "others_think", "dependent"]),
        answers_with(M5=["dependent", "side_effects"]),
    )
    assert found == [Change("M5", (), ("others_think",), "new_worries")]


def test_gone_worries():
    found = changes(
        answers_with(M5=["cost_access", "side_effects"]),
        answers_with(M5=["dependent", "cost_access", "side_effects"]),
    )
    assert found == [Change("M5", ("dependent",), (), "gone_worries")]


def test_worries_from_none_to_some_and_back():
    some, none = answers_with(M5=["dependent"]), answers_with(M5=["none"])
    assert changes(some, none) == [Change("M5", (), ("dependent",), "new_worries")]
    assert changes(none, some) == [Change("M5", ("dependent",), (), "gone_worries")]


@pytest.mark.parametrize("skipped_in", ["current", "previous"])
def test_skipped_worries_are_not_new_or_gone(skipped_in):
    current = answers_with(M4=SKIP, M5=["dependent"])
    previous = answers_with(M4=SKIP, M5=["side_effects"])
    (current if skipped_in == "current" else previous).pop("M5")
    assert changes(current, previous) == []


def test_stance_change_comes_last_with_its_causes():
    previous = answers_with(M4=7, M5=["side_effects"], M2="positive")
    current = answers_with(M4=8, M5=["side_effects", "dependent"], M2="mixed", R1=1)
    assert changes(current, previous) == [
        Change("M4", 7, 8, "changed"),
        Change("R1", 3, 1, "changed"),
        Change("M2", "positive", "mixed", "changed"),
        Change("M5", (), ("dependent",), "new_worries"),
        Change("stance", "accepting", "ambivalent", "stance"),
    ]


def test_answered_both_times_leaves_nothing_uncompared():
    assert summary.not_compared(LOUD, copy.deepcopy(LOUD)) == ([], [])
    assert summary.not_compared(LOUD, None) == ([], [])


def test_what_was_not_answered_is_named_on_its_side():
    current = answers_with(M4=SKIP, P3=SKIP)
    previous = answers_with(M5=[], R1=SKIP)
    assert summary.not_compared(current, previous) == (["M4", "P3"], ["R1", "M5"])


def test_an_answer_missing_last_time_is_not_compared_not_unchanged():
    # A visit from before P3 existed: the change list is empty, yet P3 was not compared.
    previous = answers_with(P3=SKIP)
    assert changes(QUIET, previous) == []
    assert summary.not_compared(QUIET, previous) == ([], ["P3"])


@pytest.mark.parametrize(
    ("h1", "expected"),
    [
        ("I could work again", Quote("I could work again")),
        ("   ", None),
        (SKIP, None),
    ],
)
def test_last_visits_hopes_are_quoted_as_written(h1, expected):
    assert summary.previous_hopes(answers_with(H1=h1)) == expected
    assert summary.previous_hopes(None) is None


def test_stance_change_needs_a_stance_on_both_sides():
    current = answers_with(M4=8, M5=["side_effects", "dependent"])
    previous = answers_with(M4=SKIP, M5=["side_effects"])
    assert [c.kind for c in changes(current, previous)] == ["new_worries"]


# --- references to the questionnaire ----------------------------------------------------


def with_item(q, item):
    sections = tuple(
        replace(s, items=tuple(item if i.id == item.id else i for i in s.items)) for s in q.sections
    )
    return replace(q, sections=sections, items={**q.items, item.id: item})


def without_item(q, item_id):
    sections = tuple(
        replace(s, items=tuple(i for i in s.items if i.id != item_id)) for s in q.sections
    )
    return replace(q, sections=sections, items={k: v for k, v in q.items.items() if k != item_id})


def test_references_hold_in_the_shipped_questionnaire():
    assert check_references(questionnaire.default()) == []


def test_every_referenced_item_has_an_expected_type():
    assert set(REFERENCED) == set(REFERENCED_TYPES)


@pytest.mark.parametrize(
    ("item_id", "choice_id"),
    sorted((item_id, choice_id) for item_id, ids in REFERENCED.items() for choice_id in ids),
)
def test_a_missing_choice_is_reported(item_id, choice_id):
    q = questionnaire.default()
    item = q.items[item_id]
    broken = replace(item, choices=tuple(c for c in item.choices if c.id != choice_id))
    problems = check_references(with_item(q, broken))
    assert len(problems) == 1
    assert item_id in problems[0] and choice_id in problems[0]


@pytest.mark.parametrize("item_id", sorted(REFERENCED))
def test_a_missing_item_is_reported(item_id):
    problems = check_references(without_item(questionnaire.default(), item_id))
    assert len(problems) == 1 and item_id in problems[0]


@pytest.mark.parametrize(
    ("item_id", "new_type"), [("M4", "text"), ("R1", "single"), ("P1", "multi"), ("M3", "single")]
)
def test_a_changed_item_type_is_reported(item_id, new_type):
    q = questionnaire.default()
    problems = check_references(with_item(q, replace(q.items[item_id], type=new_type)))
    assert len(problems) == 1 and item_id in problems[0] and new_type in problems[0]


def test_check_references_does_not_touch_the_shipped_definition():
    q = questionnaire.default()
    check_references(without_item(q, "P2"))
    assert "P2" in q.items and check_references(questionnaire.default()) == []


# --- skipped items ----------------------------------------------------------------------

ALL_SECTIONS = questionnaire.default().item_ids  # every question reached


def items_of(*sections: str) -> set[str]:
    q = questionnaire.default()
    return {i.id for s in q.sections if s.id in sections for i in s.items}


@pytest.mark.parametrize(
    ("reached", "expected"),
    [
        (ALL_SECTIONS, ["T2", "M3", "S1"]),
        (items_of("today", "medicines"), ["T2", "M3"]),
        (items_of("medicines"), ["M3"]),
        ([], []),
        (items_of("going", "family"), []),
        # Per screen (v3): M3 on a screen never reached is not skipped.
        ({"T1", "T2", "M0", "M1", "M2"}, ["T2"]),
    ],
)
def test_skipped_items_only_among_the_questions_shown(reached, expected):
    answers = answers_with(S1=SKIP, M3=SKIP, T2=SKIP)
    assert skipped_items(answers, reached, questionnaire.default()) == expected


def test_skipped_items_follow_questionnaire_order():
    answers = answers_with(S1=SKIP, R1=SKIP, T1=SKIP)
    assert skipped_items(answers, ALL_SECTIONS, questionnaire.default()) == ["T1", "R1", "S1"]


def test_nothing_answered_means_every_reached_item_skipped():
    q = questionnaire.default()
    # A standard measure's items are never listed: its line says what it lacks.
    assert skipped_items({}, ALL_SECTIONS, q) == [
        i for i in q.item_ids if not q.items[i].instrument
    ]


@pytest.mark.parametrize(
    ("value", "answered"),
    [
        ("I want to talk", True),
        ("   ", False),
        ("", False),
        (None, False),
        ([], False),
        (["none"], True),
        (0, True),
        ([{"name": "lithium", "feeling": None}], True),
        ({"choice": "no", "text": ""}, True),
        ({"choice": None, "text": "Faith matters"}, True),
        ({"choice": None, "text": "  "}, False),
    ],
)
def test_is_answered(value, answered):
    assert is_answered(value) is answered


# --- purity ------------------------------------------------------------------------------


def test_summary_module_imports_no_web_or_storage_code():
    # Load the file on its own: the patientapp package itself imports Flask.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('summary_alone', {SUMMARY_PATH!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['summary_alone'] = module\n"
        "spec.loader.exec_module(module)\n"
        "bad = {'flask', 'sqlite3', 'sqlite_utils', 'patientapp'}\n"
        "print(sorted(bad & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the safety history --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], False),
        (["not_at_all"], False),
        (["declined", "not_at_all", "declined"], False),
        (["several_days", "not_at_all"], True),
        (["not_at_all", "nearly_every_day", "declined"], True),
        (["a_typo"], True),  # an unknown value must never lose a banner
    ],
)
def test_any_worrying_saved_value_keeps_the_banner(history, expected):
    assert summary.ever_worrying(history) is expected

"""Example answers, all fictional: one source for the demo command, the tests and the
benchmark.

Stored shape (the module's UPPER_CASE dicts): item id -> value, exactly as the patient
pages store it (documented at the top of questionnaire.toml); a missing id means the
patient skipped the item. Form shape (the *_FORM dicts): step number -> the fields that
step's form posts.
"""

from __future__ import annotations

# The patient the tests and the benchmark walk through the pages: every item answered,
# family against medicines, hoping to lower the dose.
LOWER_THE_DOSE = {
    "T1": ["worried", "tired"],
    "T2": "Whether I can lower the dose before summer.",
    "M1": [{"name": "Sertraline", "feeling": "mixed"}],
    "M2": "mixed",
    "M3": ["safety_net", "crutch"],
    "M4": 8,
    "M5": ["side_effects", "dependent"],
    "P1": "chose_to_skip",
    "P2": ["felt_better", "side_effects"],
    "F1": ["against"],
    "F2": {"choice": "yes", "text": "My mother says pills are weakness."},
    "F3": ["pressured"],
    "W1": ["body_chemistry"],
    "W2": "takes_edge",
    "H1": "I would go back to work and see my friends.",
    "H2": ["more_expected"],
    "R1": 1,
    "R2": "together",
    "R3": ["lowering", "side_effects"],
    "S1": "not_at_all",
}
# The same answers as the step forms post them (a test keeps the two shapes in step).
LOWER_THE_DOSE_FORM = {
    1: {"T1": ["worried", "tired"], "T2": "Whether I can lower the dose before summer."},
    2: {
        "M1-0-name": "Sertraline",
        "M1-0-feeling": "mixed",
        "M2": "mixed",
        "M3": ["safety_net", "crutch"],
        "M4": "8",
        "M5": ["side_effects", "dependent"],
    },
    3: {"P1": "chose_to_skip", "P2": ["felt_better", "side_effects"]},
    4: {
        "F1": ["against"],
        "F2": "yes",
        "F2_text": "My mother says pills are weakness.",
        "F3": ["pressured"],
    },
    5: {"W1": ["body_chemistry"], "W2": "takes_edge"},
    6: {"H1": "I would go back to work and see my friends.", "H2": ["more_expected"]},
    7: {"R1": "1", "R2": "together", "R3": ["lowering", "side_effects"]},
    8: {"S1": "not_at_all"},
}


# The demo's visits (flask demo): a safety concern, an ambivalent patient, one follow-up
# four weeks apart, one on step 3, one in Spanish, one who keeps things for in person.
SAFETY_CONCERN = {
    "T1": ["sad", "tired"],
    "T2": "I haven't been sleeping and everything feels heavy again.",
    "M1": [{"name": "Sertraline 100 mg", "feeling": "not_sure"}],
    "M2": "unsure",
    "M3": ["helper"],
    "M4": 6,
    "M5": ["not_myself"],
    "P1": "missed_by_accident",
    "P2": ["never"],
    "F1": ["supportive"],
    "F2": {"choice": "no", "text": ""},
    "F3": ["helped_a_lot"],
    "W1": ["stress", "past_experiences"],
    "W2": "takes_edge",
    "H1": "I could get up in the morning and go to work without dreading it.",
    "H2": ["none"],
    "R1": 3,
    "R2": "together",
    "R3": ["changing"],
    "S1": "several_days",
}
AMBIVALENT = {
    "T1": ["worried", "hopeful"],
    "T2": "Whether I really have to take this for the rest of my life.",
    "M1": [{"name": "Lithium", "feeling": "helping"}, {"name": "Quetiapine", "feeling": "mixed"}],
    "M2": "mixed",
    "M3": ["safety_net", "crutch"],
    "M4": 8,
    "M5": ["dependent", "long_term_harm"],
    "P1": "as_prescribed",
    "P2": ["felt_better"],
    "F1": ["supportive", "bad_experience"],
    "F2": {"choice": "no", "text": ""},
    "F3": ["helped_a_lot", "bad_side_effects"],
    "W1": ["body_chemistry", "stress"],
    "W2": "prevents_relapse",
    "H1": "I would trust that I can stay well, and maybe start a family.",
    "H2": ["more_expected"],
    "R1": 2,
    "R2": "together",
    "R3": ["how_long", "lowering"],
    "S1": "not_at_all",
}
FOLLOW_UP_BEFORE = {
    "T1": ["frustrated", "tired"],
    "T2": "The side effects. I feel slowed down all day.",
    "M1": [{"name": "Aripiprazole", "feeling": "not_helping"}],
    "M2": "unsure",
    "M3": ["nothing_much"],
    "M4": 4,
    "M5": ["side_effects"],
    "P1": "chose_to_skip",
    "P2": ["side_effects", "test_need"],
    "F1": ["dont_know"],
    "F2": {"choice": "no", "text": ""},
    "F3": ["not_listened"],
    "W1": ["stress"],
    "W2": "not_sure",
    "H1": "I could concentrate at work again.",
    "H2": ["none"],
    "R1": 1,
    "R2": "mostly_me",
    "R3": ["side_effects", "changing"],
    "S1": "not_at_all",
}
FOLLOW_UP_NOW = {
    "T1": ["okay", "hopeful"],
    "T2": "The new dose is better, but I want to talk about how my family sees it.",
    "M1": [{"name": "Aripiprazole", "feeling": "helping"}],
    "M2": "mixed",
    "M3": ["helper", "reminder"],
    "M4": 7,
    "M5": ["side_effects", "not_myself", "others_think"],
    "P1": "missed_by_accident",
    "P2": ["side_effects", "test_need"],
    "F1": ["dont_know", "prefer_other"],
    "F2": {
        "choice": "yes",
        "text": "At my church people say you should pray instead of taking pills.",
    },
    "F3": ["not_listened", "helped_a_lot"],
    "W1": ["stress", "spiritual"],
    "W2": "takes_edge",
    "H1": "I would feel like myself with my friends again.",
    "H2": ["relationships_change"],
    "R1": 3,
    "R2": "together",
    "R3": ["side_effects", "how_long"],
    "S1": "not_at_all",
}
IN_PROGRESS = {  # sections 1 and 2 only: the patient is on step 3 now
    "T1": ["worried"],
    "T2": "Can I stop before my exams?",
    "M1": [{"name": "Escitalopram", "feeling": "mixed"}],
    "M2": "mixed",
    "M4": 5,
    "M5": ["side_effects"],
}
SPANISH = {
    "T1": ["tired", "worried"],
    "T2": "Quiero hablar de si puedo bajar la dosis, porque me da mucho sueño.",
    "M1": [{"name": "Fluoxetina", "feeling": "mixed"}],
    "M2": "mixed",
    "M3": ["helper", "crutch"],
    "M4": 6,
    "M5": ["side_effects", "dependent"],
    "P1": "chose_to_skip",
    "P2": ["felt_better"],
    "F1": ["against"],
    "F2": {
        "choice": "yes",
        "text": "Mi madre dice que las pastillas son para los débiles y que debo ser fuerte.",
    },
    "F3": ["pressured"],
    "W1": ["relationships", "stress"],
    "W2": "takes_edge",
    "H1": "Tendría más energía para jugar con mis hijos.",
    "H2": ["none"],
    "R1": 1,
    "R2": "together",
    "R3": ["lowering", "side_effects"],
    "S1": "not_at_all",
}
IN_PERSON = {
    "T1": ["calm"],
    "T2": "Just a check-in, things are mostly okay.",
    "M1": [
        {"name": "Bupropion", "feeling": "helping"},
        {"name": "Melatonin", "feeling": "not_sure"},
    ],
    "M2": "positive",
    "M3": ["helper"],
    "M4": 7,
    "M5": ["none"],
    "P1": "stopped",
    "P2": ["cost"],
    "F1": ["supportive"],
    "F2": {
        "choice": "yes",
        "text": "Something in my family about medicine that I'd rather explain face to face.",
    },
    "F3": ["helped_a_lot"],
    "W1": ["body_chemistry"],
    "W2": "fixes_chemical",
    "H1": "I would go back to my studies.",
    "H2": ["losing_support"],
    "R1": 4,
    "R2": "psychiatrist_decides",
    "R3": ["nothing"],
    "S1": "not_at_all",
}


def by_step(answers: dict, questionnaire) -> dict[int, dict]:
    """Stored-shape answers split into the questionnaire's steps, numbered from 1, as the
    steps save them (None for an item left unanswered)."""
    return {
        number: {item.id: answers.get(item.id) for item in section.items}
        for number, section in enumerate(questionnaire.sections, start=1)
    }

"""Summary logic: pure functions from one visit's answers to what the summary shows.

No Flask, SQL or I/O here, so every rule can be tested on plain dicts.

Answers are a ``dict`` keyed by item id; a key is absent when the patient skipped the
item (an empty list, blank text or ``None`` is read the same way). A skipped item never
fires a flag and is never read as "low" or "no".

Reader-facing strings are English message ids wrapped in ``N_`` so the extractor finds
them; the view layer translates them. Their parameters are returned unformatted:
``ChoiceRef`` for a choice label (the view translates it), ``Quote`` for the patient's
own free text (shown exactly as written), ``int`` for numbers, and a ``tuple`` of
``ChoiceRef`` for a list of labels (the view joins them).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patientapp.questionnaire import Questionnaire


def N_(s: str) -> str:
    """Mark a message id for extraction without translating it (the view translates)."""
    return s


@dataclass(frozen=True)
class ChoiceRef:
    """A fixed choice, named by id; the view shows its label in the reader's language."""

    item_id: str
    choice_id: str


@dataclass(frozen=True)
class Quote:
    """The patient's own free text, exactly as written; never translated."""

    text: str


# --- reading answers -----------------------------------------------------------------


def _single(answers: Mapping, item_id: str) -> str | None:
    value = answers.get(item_id)
    return value if isinstance(value, str) and value else None


def _multi(answers: Mapping, item_id: str) -> tuple[str, ...]:
    value = answers.get(item_id)
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _scale(answers: Mapping, item_id: str) -> int | None:
    value = answers.get(item_id)
    # bool is an int subclass; a stray True must not read as a rating of 1.
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _yesno(answers: Mapping, item_id: str) -> tuple[str | None, str]:
    value = answers.get(item_id)
    if not isinstance(value, Mapping):
        return None, ""
    choice, text = value.get("choice"), value.get("text")
    return (choice if isinstance(choice, str) else None), (text if isinstance(text, str) else "")


def _choices_except_none(answers: Mapping, item_id: str) -> tuple[str, ...]:
    return tuple(c for c in _multi(answers, item_id) if c != "none")


def is_answered(value: object) -> bool:
    """True when a stored value holds an answer (not None, blank text or an empty list)."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple)):
        return bool(value)
    if isinstance(value, Mapping):
        text = value.get("text")
        return value.get("choice") is not None or bool(isinstance(text, str) and text.strip())
    return True


# --- safety ----------------------------------------------------------------------------

SAFETY_ENDORSED = ("several_days", "more_than_half", "nearly_every_day")
NOT_AT_ALL = "not_at_all"
DECLINED = "declined"  # how the safety history records a skipped question


def is_worrying(value: str) -> bool:
    """Whether a saved safety value (from the history) is anything but "not at all"."""
    return value not in (NOT_AT_ALL, DECLINED)


def ever_worrying(history: Sequence[str]) -> bool:
    """Whether any value the patient saved for the safety question was worrying: the
    banner stays even after the answer was changed or skipped."""
    return any(is_worrying(value) for value in history)


def safety_status(answers: Mapping, reached: bool) -> str:
    """How the safety question (S1) was answered.

    Returns "endorsed", "not_endorsed", "declined" (skipped after reaching the safety
    section) or "not_reached". Any stored choice other than "not_at_all", even an
    unknown one, counts as endorsed: a banner must never be lost to a typo.
    """
    choice = _single(answers, "S1")
    if choice is None:
        return "declined" if reached else "not_reached"
    return "not_endorsed" if choice == "not_at_all" else "endorsed"


# --- flags -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One conversation flag: its practice numbers, a title and an opener to ask.

    ``title`` and ``opener`` are untranslated message ids; ``params`` holds the opener's
    named placeholders as (name, value) pairs so a Flag stays hashable. Use ``kwargs``
    to format: ``gettext(flag.opener) % view_values(flag.kwargs)``.
    """

    id: str
    priority: int
    practices: tuple[int, ...]
    title: str
    opener: str
    params: tuple[tuple[str, object], ...] = ()

    @property
    def kwargs(self) -> dict[str, object]:
        """The opener's parameters as a dict."""
        return dict(self.params)


def _refs(item_id: str, choice_ids: tuple[str, ...]) -> tuple[ChoiceRef, ...]:
    return tuple(ChoiceRef(item_id, c) for c in choice_ids)


def _first_in(answers: Mapping, item_id: str, wanted: tuple[str, ...]) -> ChoiceRef | None:
    """The first of ``wanted`` the patient picked, in ``wanted`` order."""
    picked = set(_multi(answers, item_id)) | {_single(answers, item_id)}
    return next((ChoiceRef(item_id, c) for c in wanted if c in picked), None)


def _ambivalence(answers: Mapping) -> Flag | None:
    need = _scale(answers, "M4")
    med_worries, later_worries = worries(answers), _choices_except_none(answers, "H2")
    mixed = _single(answers, "M2") == "mixed"
    if need is None or need < 6 or not (len(med_worries) >= 2 or mixed or later_worries):
        return None
    # Name medicine worries first (even a single one): they are what weighs against need.
    if med_worries:
        opener = N_(
            "You feel you need your medicine (%(need)s out of 10), and you also "
            "worry about: %(worries)s. Tell me about both."
        )
        param = ("worries", _refs("M5", med_worries))
    elif later_worries:
        opener = N_(
            "You feel you need your medicine (%(need)s out of 10), and feeling "
            "better might bring worries too: %(worries)s. Tell me about both."
        )
        param = ("worries", _refs("H2", later_worries))
    else:
        opener = N_(
            "You feel you need your medicine (%(need)s out of 10), and you also "
            'said your feeling about taking it is "%(feeling)s". Tell me about both.'
        )
        param = ("feeling", ChoiceRef("M2", "mixed"))
    return Flag("ambivalence", 1, (1, 7), N_("Ambivalence"), opener, (("need", need), param))


def _self_adjusting(answers: Mapping) -> Flag | None:
    answer = _first_in(answers, "P1", ("chose_to_skip", "stopped"))
    if answer is None:
        return None
    opener = N_(
        'About the last 2 weeks, you said: "%(answer)s". Many people adjust their '
        "medicine themselves. What have you noticed?"
    )
    return Flag("self_adjusting", 2, (4,), N_("Self-adjusting"), opener, (("answer", answer),))


def _stops_at_recovery(answers: Mapping) -> Flag | None:
    answer = _first_in(answers, "P2", ("felt_better",))
    if answer is None:
        return None
    opener = N_(
        'You said you have stopped a medicine on your own: "%(answer)s". What '
        "happens for you when you start to feel better?"
    )
    return Flag(
        "stops_at_recovery", 3, (4, 3), N_("Stops at recovery"), opener, (("answer", answer),)
    )


_CONTROL_OPENERS = {
    "M3": N_('You said your medicine feels like "%(answer)s". Can you tell me more about that?'),
    "M5": N_(
        'One of your worries is "%(answer)s". What would feeling in charge of your '
        "treatment look like for you?"
    ),
    "R2": N_(
        'About decisions on your medicine, you said: "%(answer)s". Tell me what '
        "matters most to you when we decide."
    ),
}


def _control(answers: Mapping) -> Flag | None:
    answer = (
        _first_in(answers, "M3", ("controls_me", "punishment"))
        or _first_in(answers, "M5", ("being_controlled",))
        or _first_in(answers, "R2", ("mostly_me",))
    )
    if answer is None:
        return None
    return Flag(
        "control", 4, (4, 5), N_("Control"), _CONTROL_OPENERS[answer.item_id], (("answer", answer),)
    )


def _hard_to_voice_doubts(answers: Mapping) -> Flag | None:
    rating = _scale(answers, "R1")
    if rating is None or rating > 1:
        return None
    opener = N_(
        "You rated how easy it is to tell me you disagree as %(rating)s out of 4. "
        "It's fine to disagree with me here, and I want to hear your doubts."
    )
    return Flag(
        "hard_to_voice_doubts", 5, (6,), N_("Hard to voice doubts"), opener, (("rating", rating),)
    )


def _family_culture(answers: Mapping) -> Flag | None:
    f2_choice, f2_text = _yesno(answers, "F2")
    close = _first_in(answers, "F1", ("against", "dont_know"))
    if close is None and f2_choice != "yes":
        return None
    title, practices = N_("Family / culture"), (3,)
    # Their own words say more than any fixed choice, so they win when present.
    if f2_text.strip():
        opener = N_('You wrote: "%(quote)s". How does this shape the way you see your medicine?')
        return Flag("family_culture", 6, practices, title, opener, (("quote", Quote(f2_text)),))
    if close is not None:
        opener = N_(
            'About the people close to you, you said: "%(answer)s". How do they see your medicine?'
        )
        return Flag("family_culture", 6, practices, title, opener, (("answer", close),))
    opener = N_(
        'You answered "%(answer)s" when asked about your background, culture or '
        "faith. What would you like me to understand about it?"
    )
    return Flag(
        "family_culture", 6, practices, title, opener, (("answer", ChoiceRef("F2", "yes")),)
    )


def _past_pressure(answers: Mapping) -> Flag | None:
    answer = _first_in(answers, "F3", ("pressured",))
    if answer is None:
        return None
    opener = N_(
        'About past treatment, you said: "%(answer)s". What happened, and how '
        "would you like it to be different here?"
    )
    return Flag("past_pressure", 7, (3,), N_("Past pressure"), opener, (("answer", answer),))


def _biology_only(answers: Mapping) -> Flag | None:
    if _multi(answers, "W1") != ("body_chemistry",):
        return None
    # A prompt about life context, never a label for the patient's view of their illness.
    opener = N_(
        'You said your difficulties come from "%(answer)s". Besides that, what '
        "else has been going on in your life lately?"
    )
    return Flag(
        "biology_only",
        8,
        (2,),
        N_("Biology only"),
        opener,
        (("answer", ChoiceRef("W1", "body_chemistry")),),
    )


_FLAG_RULES = (
    _ambivalence,
    _self_adjusting,
    _stops_at_recovery,
    _control,
    _hard_to_voice_doubts,
    _family_culture,
    _past_pressure,
    _biology_only,
)


def all_flags(answers: Mapping) -> list[Flag]:
    """Every non-safety flag that fires, highest priority (1) first."""
    fired = (rule(answers) for rule in _FLAG_RULES)
    return sorted((f for f in fired if f is not None), key=lambda f: f.priority)


def top_flags(answers: Mapping, limit: int = 3) -> list[Flag]:
    """The ``limit`` highest-priority flags; the summary shows at most three."""
    return all_flags(answers)[:limit]


# --- medication stance -----------------------------------------------------------------

STANCE_LABELS: dict[str, str] = {
    "accepting": N_("Accepting (sees a need, few worries)"),
    "ambivalent": N_("Ambivalent (sees a need, and has worries)"),
    "sceptical": N_("Sceptical (sees little need, has worries)"),
    "indifferent": N_("Indifferent (sees little need, few worries)"),
}


def worries(answers: Mapping) -> tuple[str, ...]:
    """The M5 worries picked, in answer order, without "none"."""
    return _choices_except_none(answers, "M5")


def stance(answers: Mapping) -> str | None:
    """Necessity (M4 >= 6) against concerns (2+ M5 worries): a key of STANCE_LABELS.

    Returns None when M4 or M5 was skipped: an unanswered item is unknown, and reading
    it as "low" would invent a stance the patient never gave.
    """
    need = _scale(answers, "M4")
    if need is None or not _multi(answers, "M5"):
        return None
    high_need, high_concern = need >= 6, len(worries(answers)) >= 2
    if high_need:
        return "ambivalent" if high_concern else "accepting"
    return "sceptical" if high_concern else "indifferent"


# --- since last visit ------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One thing that moved since the previous visit.

    kind "changed": M4, R1 or M2 raw values; "new_worries" / "gone_worries": M5 choice
    ids in ``after`` / ``before`` (the other side is ``()``); "stance": item_id "stance"
    and the two stance keys.
    """

    item_id: str
    before: object
    after: object
    kind: str


def _value_changes(current: Mapping, previous: Mapping) -> list[Change]:
    found = []
    for item_id, read in (("M4", _scale), ("R1", _scale), ("M2", _single)):
        before, after = read(previous, item_id), read(current, item_id)
        # A skip on either side is unknown, not a change.
        if before is not None and after is not None and before != after:
            found.append(Change(item_id, before, after, "changed"))
    return found


def _worry_changes(current: Mapping, previous: Mapping) -> list[Change]:
    if not (_multi(current, "M5") and _multi(previous, "M5")):
        return []
    now, before = worries(current), worries(previous)
    new = tuple(w for w in now if w not in before)
    gone = tuple(w for w in before if w not in now)
    found = []
    if new:
        found.append(Change("M5", (), new, "new_worries"))
    if gone:
        found.append(Change("M5", gone, (), "gone_worries"))
    return found


def changes(current: Mapping, previous: Mapping | None) -> list[Change]:
    """What moved since the previous visit: M4, R1, M2, M5 worries, then stance.

    Only items answered in both visits are compared, so a skip never shows as a change.
    Returns [] when there is no previous visit.
    """
    if previous is None:
        return []
    found = _value_changes(current, previous) + _worry_changes(current, previous)
    before, after = stance(previous), stance(current)
    if before is not None and after is not None and before != after:
        found.append(Change("stance", before, after, "stance"))
    return found


# --- consistency with the questionnaire definition ------------------------------------

# Every item and choice id the rules above read; scales carry no choices.
REFERENCED: dict[str, set[str]] = {
    "M2": {"mixed"},
    "M3": {"controls_me", "punishment"},
    "M4": set(),
    "M5": {"none", "being_controlled"},
    "P1": {"chose_to_skip", "stopped"},
    "P2": {"felt_better"},
    "F1": {"against", "dont_know"},
    "F2": {"yes"},
    "F3": {"pressured"},
    "W1": {"body_chemistry"},
    "H2": {"none"},
    "R1": set(),
    "R2": {"mostly_me"},
    "S1": {"not_at_all", *SAFETY_ENDORSED},
}

# The readers above assume these item types; a changed type would silently never fire.
REFERENCED_TYPES: dict[str, str] = {
    "M2": "single",
    "M3": "multi",
    "M4": "scale",
    "M5": "multi",
    "P1": "single",
    "P2": "multi",
    "F1": "multi",
    "F2": "yesno_text",
    "F3": "multi",
    "W1": "multi",
    "H2": "multi",
    "R1": "scale",
    "R2": "single",
    "S1": "single",
}


def check_references(questionnaire: Questionnaire) -> list[str]:
    """Problems between this module's rules and a questionnaire definition; [] if none."""
    problems = []
    for item_id, choice_ids in REFERENCED.items():
        item = questionnaire.items.get(item_id)
        if item is None:
            problems.append(f"summary logic uses item {item_id}, which the questionnaire lacks")
            continue
        if item.type != REFERENCED_TYPES[item_id]:
            problems.append(
                f"summary logic expects item {item_id} to be "
                f"'{REFERENCED_TYPES[item_id]}', not '{item.type}'"
            )
        for choice_id in sorted(choice_ids - set(item.choice_ids)):
            problems.append(
                f"summary logic uses choice '{choice_id}' of item {item_id}, "
                "which the questionnaire lacks"
            )
    return problems


def skipped_items(
    answers: Mapping, reached_section_ids: Collection[str], questionnaire: Questionnaire
) -> list[str]:
    """Ids of unanswered items in sections the patient reached, in questionnaire order.

    Items in sections never reached are not "skipped": the patient did not see them.
    """
    return [
        item.id
        for section in questionnaire.sections
        if section.id in reached_section_ids
        for item in section.items
        if not is_answered(answers.get(item.id))
    ]

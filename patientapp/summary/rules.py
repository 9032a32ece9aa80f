"""Summary logic: pure functions from one visit's answers to what the summary shows.

No Flask, SQL or I/O here, so every rule can be tested on plain dicts.

Answers are a ``dict`` keyed by item id; a key is absent when the patient skipped the
item (an empty list, blank text or ``None`` is read the same way). A skipped item never
fires a flag and is never read as "low" or "no". Items held for in person and items the
patient's own answer left unasked (M0 "no": M1-M5 and P1, ``Questionnaire.not_asked``)
are removed by the caller before these rules run, so neither ever fires a flag.

Reader-facing strings are English message ids wrapped in ``N_`` so the extractor finds
them; the view layer translates them. Their parameters are returned unformatted:
``ChoiceRef`` for a choice label (the view translates it), ``Quote`` for the patient's
own free text (shown exactly as written), ``Phrase`` for an answer in a form that reads
inside a sentence, ``int`` for numbers, and a ``tuple`` of ``Phrase`` for a list of
them (the view joins them).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patientapp.questionnaire.model import Questionnaire


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


@dataclass(frozen=True)
class Phrase:
    """A fixed answer in a form that reads inside a sentence ("becoming dependent on
    it"), not its label; the view translates it as ``pgettext(context, text)``."""

    context: str
    text: str


def NP_(context: str, text: str) -> Phrase:
    """Mark a phrase with its context for extraction (babel.cfg lists ``NP_:1c,2``)."""
    return Phrase(context, text)


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


def safety_severity(value: str) -> int:
    """How severe a saved safety value is: "not at all" < "several days" < "more than half
    the days" < "nearly every day"; a skip and any value outside the scale rank 0."""
    scale = (NOT_AT_ALL, *SAFETY_ENDORSED)
    return scale.index(value) if value in scale else 0


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
    to format: ``gettext(flag.opener) % view_values(flag.kwargs)``. Openers are whole
    sentences written for each trigger, so no answer label is spliced into a sentence;
    the only values spliced in are numbers, the patient's own words (``Quote``) and
    phrase forms (``Phrase``) written to read inside a sentence.
    """

    id: str
    priority: int
    practices: tuple[int, ...]
    title: str
    opener: str
    params: tuple[tuple[str, object], ...] = ()
    evidence: int = 1  # how many different answers point to it (3 or more: converging)

    @property
    def kwargs(self) -> dict[str, object]:
        """The opener's parameters as a dict."""
        return dict(self.params)


def _picked(answers: Mapping, item_id: str) -> set[str]:
    return set(_multi(answers, item_id)) | ({_single(answers, item_id)} - {None})


def _first_in(answers: Mapping, item_id: str, wanted: tuple[str, ...]) -> str | None:
    """The first of ``wanted`` the patient picked, in ``wanted`` order."""
    picked = _picked(answers, item_id)
    return next((c for c in wanted if c in picked), None)


def quote_in_sentence(text: str) -> Quote:
    """The patient's words to set inside a sentence: outer spaces and a closing full stop
    left off, so the sentence's own punctuation after the quotation mark is never doubled
    (``pills.".``). A question or exclamation mark stays: it reads well mid-sentence."""
    trimmed = text.strip()
    return Quote(trimmed.rstrip(".\u3002\uff0e").rstrip() or trimmed)


# Worries as the psychiatrist says them to the patient, to read inside a sentence.
WORRY_PHRASES_TO_PATIENT: dict[str, Phrase] = {
    "side_effects": NP_("worry, said to the patient", "side effects"),
    "long_term_harm": NP_("worry, said to the patient", "harm over a long time"),
    "dependent": NP_("worry, said to the patient", "becoming dependent on it"),
    "not_myself": NP_("worry, said to the patient", "not feeling like yourself"),
    "others_think": NP_("worry, said to the patient", "what other people think"),
    "being_controlled": NP_("worry, said to the patient", "being controlled"),
    "cost_access": NP_("worry, said to the patient", "paying for it or being able to get it"),
}
LATER_WORRY_PHRASES: dict[str, Phrase] = {
    "more_expected": NP_("worry about getting better", "people expecting more of you"),
    "losing_support": NP_("worry about getting better", "losing help or payments you get"),
    "relationships_change": NP_("worry about getting better", "changes in your relationships"),
    "not_myself": NP_("worry about getting better", "not feeling like yourself"),
}


def _phrases(choice_ids: Sequence[str], phrases: Mapping[str, Phrase]) -> tuple[Phrase, ...]:
    return tuple(phrases[c] for c in choice_ids if c in phrases)


def _hard_to_say(answers: Mapping) -> Flag | None:
    rating, care = _scale(answers, "R1"), _single(answers, "R4")
    low = rating is not None and rating <= 1
    if not low and care not in ("yes_talk", "yes_not_ready"):
        return None
    title, practices = N_("Hard to say"), (6,)
    evidence = int(low) + int(care in ("yes_talk", "yes_not_ready"))
    if care == "yes_not_ready":
        # An invitation, never pressure: the patient said they are not ready.
        opener = N_(
            "You said something about your care here has been hard to say, and that you "
            "are not ready to talk about it. That's okay. If you ever want to tell me, "
            "I will listen, and it's fine to disagree with me."
        )
        return Flag("hard_to_say", 1, practices, title, opener, evidence=evidence)
    if care == "yes_talk":
        opener = N_(
            "You said something about your care here has been hard to say, and that you "
            "would like to talk about it. It's fine to disagree with me or tell me when "
            "something bothered you. What happened?"
        )
        return Flag("hard_to_say", 1, practices, title, opener, evidence=evidence)
    opener = N_(
        "You rated how easy it is to tell me you disagree as %(rating)s out of 4. "
        "It's fine to disagree with me or tell me when something bothered you."
    )
    return Flag("hard_to_say", 1, practices, title, opener, (("rating", rating),), evidence)


def _ambivalence(answers: Mapping) -> Flag | None:
    need = _scale(answers, "M4")
    med_worries, later_worries = worries(answers), _choices_except_none(answers, "H2")
    mixed = _single(answers, "M2") == "mixed"
    if need is None or need < 6 or not (len(med_worries) >= 2 or mixed or later_worries):
        return None
    title, practices = N_("Ambivalence"), (1, 7)
    # Different answers pointing here: M4, any M5 worry (the opener names even one), a
    # mixed M2, a worry about getting better (H2).
    evidence = 1 + int(bool(med_worries)) + int(mixed) + int(bool(later_worries))
    # Name medicine worries first (even a single one): they are what weighs against need.
    if med_worries:
        opener = N_(
            "You feel you need your medicine (%(need)s out of 10), and you also "
            "worry about %(worries)s. Tell me about both."
        )
        param = ("worries", _phrases(med_worries, WORRY_PHRASES_TO_PATIENT))
    elif later_worries:
        opener = N_(
            "You feel you need your medicine (%(need)s out of 10), and you worry that "
            "feeling better could mean %(worries)s. Tell me about both."
        )
        param = ("worries", _phrases(later_worries, LATER_WORRY_PHRASES))
    else:
        opener = N_(
            "You feel you need your medicine (%(need)s out of 10), and you also have "
            "mixed feelings about taking it. Tell me about both."
        )
        return Flag("ambivalence", 2, practices, title, opener, (("need", need),), evidence)
    return Flag("ambivalence", 2, practices, title, opener, (("need", need), param), evidence)


_SELF_ADJUSTING_OPENERS = {
    ("chose_to_skip", False): N_(
        "You said that in the last 2 weeks you chose to skip or change some of your "
        "medicine. Many people adjust their medicine themselves. What have you noticed?"
    ),
    ("stopped", False): N_(
        "You said that in the last 2 weeks you stopped taking your medicine. Many "
        "people adjust their medicine themselves. What have you noticed?"
    ),
    ("chose_to_skip", True): N_(
        "You said that in the last 2 weeks you chose to skip or change some of your "
        "medicine, and that someone once told you to stop a medicine. What have you "
        "noticed?"
    ),
    ("stopped", True): N_(
        "You said that in the last 2 weeks you stopped taking your medicine, and that "
        "someone once told you to stop a medicine. What have you noticed?"
    ),
}


def _self_adjusting(answers: Mapping) -> Flag | None:
    answer = _first_in(answers, "P1", ("chose_to_skip", "stopped"))
    if answer is None:
        return None
    told = "someone_told_me" in _picked(answers, "P2")
    opener = _SELF_ADJUSTING_OPENERS[answer, told]
    return Flag("self_adjusting", 3, (4,), N_("Self-adjusting"), opener, evidence=1 + told)


def _stops_at_recovery(answers: Mapping) -> Flag | None:
    if "felt_better" not in _picked(answers, "P2"):
        return None
    dependent = "dependent" in worries(answers)
    if dependent:
        opener = N_(
            "You said you have stopped a medicine on your own when you felt better, and "
            "that you worry about becoming dependent on it. What happens for you when "
            "you start to feel better?"
        )
    else:
        opener = N_(
            "You said you have stopped a medicine on your own when you felt better. "
            "What happens for you when you start to feel better?"
        )
    title = N_("Stops at recovery")
    return Flag("stops_at_recovery", 4, (4, 3), title, opener, evidence=1 + dependent)


_LIFE_HARDER_OPENERS = {
    "much_worse": N_(
        "You said daily life and relationships have been much harder lately. "
        "What has been happening?"
    ),
    "worse": N_(
        "You said daily life and relationships have been a little harder lately. "
        "What has been happening?"
    ),
}


def _life_harder(answers: Mapping) -> Flag | None:
    opener = _LIFE_HARDER_OPENERS.get(_single(answers, "P3"))
    if opener is None:
        return None
    return Flag("life_harder", 5, (5,), N_("Life harder"), opener)


_CONTROL_OPENERS = {
    ("M3", "controls_me"): N_(
        "You said your medicine feels like something that controls you. Can you tell "
        "me more about that?"
    ),
    ("M3", "punishment"): N_(
        "You said your medicine feels like a punishment. Can you tell me more about that?"
    ),
    ("M5", "being_controlled"): N_(
        "One of your worries is being controlled. What would feeling in charge of your "
        "treatment look like for you?"
    ),
    ("R2", "mostly_me"): N_(
        "You said you would like to make the decisions about your medicine mostly "
        "yourself. Tell me what matters most to you when we decide."
    ),
    ("R5", "control_me"): N_(
        "You said you think I may want to control how you act. What makes it feel that "
        "way, and what would you like from me instead?"
    ),
}


def _control(answers: Mapping) -> Flag | None:
    trigger = next(
        (
            (item_id, choice_id)
            for item_id, choice_id in _CONTROL_OPENERS
            if choice_id in _picked(answers, item_id)
        ),
        None,
    )
    if trigger is None:
        return None
    evidence = len(
        {
            item_id
            for item_id, choice_id in _CONTROL_OPENERS
            if choice_id in _picked(answers, item_id)
        }
    )
    opener = _CONTROL_OPENERS[trigger]
    return Flag("control", 6, (4, 5), N_("Control"), opener, evidence=evidence)


_FAMILY_OPENERS = {
    "against": N_("You said people close to you are against your medicine. How is that for you?"),
    "dont_know": N_(
        "You said people close to you don't know you take medicine. How is that for you?"
    ),
    "bad_experience": N_(
        "You said someone in your family had a bad experience with medicine. How does "
        "that shape the way you see yours?"
    ),
}


def _family_culture(answers: Mapping) -> Flag | None:
    f2_choice, f2_text = _yesno(answers, "F2")
    close = _first_in(answers, "F1", tuple(_FAMILY_OPENERS))
    if close is None and f2_choice != "yes":
        return None
    title, practices = N_("Family / culture"), (3,)
    evidence = int(close is not None) + int(f2_choice == "yes")
    # Their own words say more than any fixed choice, so they win when present.
    if f2_text.strip():
        opener = N_(
            "You wrote “%(quote)s” about your background, culture or faith. How does "
            "this shape the way you see your medicine?"
        )
        params = (("quote", quote_in_sentence(f2_text)),)
        return Flag("family_culture", 7, practices, title, opener, params, evidence)
    if close is not None:
        opener = _FAMILY_OPENERS[close]
        return Flag("family_culture", 7, practices, title, opener, evidence=evidence)
    opener = N_(
        "You said there is something about your background, culture or faith I should "
        "understand. What would you like me to know?"
    )
    return Flag("family_culture", 7, practices, title, opener, evidence=evidence)


def _past_treatment_hurt(answers: Mapping) -> Flag | None:
    answer = _first_in(answers, "F3", ("pressured", "not_listened"))
    if answer is None:
        return None
    if answer == "pressured":
        opener = N_(
            "You said that in past treatment you felt pressured or forced. What happened, "
            "and how would you like it to be different here?"
        )
    else:
        opener = N_(
            "You said that in past treatment you felt no one listened to you. What "
            "happened, and how would you like it to be different here?"
        )
    return Flag("past_treatment_hurt", 8, (3,), N_("Past treatment hurt"), opener)


LIFE_CAUSES = ("stress", "relationships", "past_experiences")  # W1 choices about life


def _biology_only(answers: Mapping) -> Flag | None:
    causes = _multi(answers, "W1")
    chemistry_alone = causes == ("body_chemistry",)
    fixes_chemical = _single(answers, "W2") == "fixes_chemical"
    from_nowhere = _single(answers, "W3") == "out_of_nowhere"
    no_life_cause = not set(causes) & set(LIFE_CAUSES)
    if not chemistry_alone and not (fixes_chemical and from_nowhere and no_life_cause):
        return None
    evidence = int(chemistry_alone) + int(fixes_chemical) + int(from_nowhere)
    # A prompt about life context, never a label for the patient's view of their illness.
    if chemistry_alone:
        opener = N_(
            "You said your difficulties come from chemicals in your body or brain. "
            "Besides that, what else has been going on in your life lately?"
        )
    else:
        opener = N_(
            "You said your medicine balances your brain chemicals and that bad feelings "
            "mostly come for no clear reason. Besides that, what has been going on in "
            "your life lately?"
        )
    return Flag("biology_only", 9, (2,), N_("Biology only"), opener, evidence=evidence)


def _worries_about_getting_better(answers: Mapping) -> Flag | None:
    later = _choices_except_none(answers, "H2")
    if not later:
        return None
    # The article's secondary benefits, never named so to anyone.
    opener = N_(
        "Feeling better can bring its own worries. You said feeling better could mean "
        "%(worries)s. What would change for you?"
    )
    params = (("worries", _phrases(later, LATER_WORRY_PHRASES)),)
    title = N_("Worries about getting better")
    return Flag("worries_getting_better", 10, (7,), title, opener, params)


_SIGNAL_OPENERS = {
    "life": N_(
        "You said bad feelings seem tied to what is going on in your life. What has been happening?"
    ),
    "both": N_(
        "You said bad feelings are sometimes tied to what is going on in your life. "
        "What has been happening?"
    ),
}


def _feelings_as_signals(answers: Mapping) -> Flag | None:
    """The article's signal function of affect: problems of living, not only illness."""
    opener = _SIGNAL_OPENERS.get(_single(answers, "W3"))
    if opener is None:
        return None
    return Flag("feelings_as_signals", 11, (1,), N_("Feelings as signals"), opener)


_FLAG_RULES = (
    _hard_to_say,
    _ambivalence,
    _self_adjusting,
    _stops_at_recovery,
    _life_harder,
    _control,
    _family_culture,
    _past_treatment_hurt,
    _biology_only,
    _worries_about_getting_better,
    _feelings_as_signals,
)
FLAG_CAP = 3  # the summary shows at most this many flags; the rest are "also noted"
FIRST = "hard_to_say"  # the relationship comes before everything else
CONVERGING = 3  # a flag three or more different answers point to comes next


def all_flags(answers: Mapping, held: Collection[str] = ()) -> list[Flag]:
    """Every non-safety flag that fires, in the page's order: HARD TO SAY first, then
    flags that three or more different answers point to, then the rest, each group by
    priority.

    ``held`` names the items the patient kept for an in-person talk: they never fire.
    """
    visible = {k: v for k, v in answers.items() if k not in held}
    fired = [f for f in (rule(visible) for rule in _FLAG_RULES) if f is not None]
    return sorted(fired, key=lambda f: (f.id != FIRST, f.evidence < CONVERGING, f.priority))


def top_flags(answers: Mapping, limit: int = FLAG_CAP, held: Collection[str] = ()) -> list[Flag]:
    """The ``limit`` highest-priority flags; the summary shows at most three."""
    return all_flags(answers, held)[:limit]


def also_noted(answers: Mapping, limit: int = FLAG_CAP, held: Collection[str] = ()) -> list[Flag]:
    """Every flag that fired beyond the ``limit`` shown: the summary names them."""
    return all_flags(answers, held)[limit:]


# --- medication stance -----------------------------------------------------------------

# The last part of the stance line: both parts named first, then the word for them.
STANCE_LABELS: dict[str, str] = {
    "accepting": N_("high need, few worries (accepting)"),
    "ambivalent": N_("both high (ambivalent)"),
    "doubtful": N_("low need, many worries (doubtful)"),
    "low_low": N_("low need, few worries"),
}
# Worries as the psychiatrist reads them in the stance line ("worries: side effects").
WORRY_PHRASES: dict[str, Phrase] = {
    "side_effects": NP_("worry, for the psychiatrist", "side effects"),
    "long_term_harm": NP_("worry, for the psychiatrist", "long-term harm"),
    "dependent": NP_("worry, for the psychiatrist", "becoming dependent"),
    "not_myself": NP_("worry, for the psychiatrist", "not feeling like themselves"),
    "others_think": NP_("worry, for the psychiatrist", "what others think"),
    "being_controlled": NP_("worry, for the psychiatrist", "being controlled"),
    "cost_access": NP_("worry, for the psychiatrist", "cost or access"),
}


def worries(answers: Mapping) -> tuple[str, ...]:
    """The M5 worries picked, in answer order, without "none"."""
    return _choices_except_none(answers, "M5")


def stance(answers: Mapping, held: Collection[str] = ()) -> str | None:
    """Necessity (M4 >= 6) against concerns (2+ M5 worries): a key of STANCE_LABELS.

    Returns None when M4 or M5 was skipped or held for in person: an unanswered item is
    unknown, and reading it as "low" would invent a stance the patient never gave.
    """
    need = _scale(answers, "M4")
    if need is None or not _multi(answers, "M5") or {"M4", "M5"} & set(held):
        return None
    high_need, high_concern = need >= 6, len(worries(answers)) >= 2
    if high_need:
        return "ambivalent" if high_concern else "accepting"
    return "doubtful" if high_concern else "low_low"


@dataclass(frozen=True)
class Stance:
    """The stance as its two parts, then the word: need out of 10, worries, key."""

    need: int
    worries: tuple[Phrase, ...]  # empty when the patient named no worries
    key: str


def stance_parts(answers: Mapping, held: Collection[str] = ()) -> Stance | None:
    """The stance line's parts; None when there is no stance (see ``stance``)."""
    key = stance(answers, held)
    need = _scale(answers, "M4")
    if key is None or need is None:
        return None
    return Stance(need, _phrases(worries(answers), WORRY_PHRASES), key)


# --- since last visit ------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One thing that moved since the previous visit.

    kind "changed": M4, R1, M2 or P3 raw values; "new_worries" / "gone_worries": M5 choice
    ids in ``after`` / ``before`` (the other side is ``()``); "stance": item_id "stance"
    and the two stance keys.
    """

    item_id: str
    before: object
    after: object
    kind: str


# The answers "since last visit" compares, in the order it lists what moved.
COMPARED_VALUES = (("M4", _scale), ("R1", _scale), ("M2", _single), ("P3", _single))
COMPARED = ("M4", "R1", "M2", "P3", "M5")


def _value_changes(current: Mapping, previous: Mapping) -> list[Change]:
    found = []
    for item_id, read in COMPARED_VALUES:
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
    """What moved since the previous visit: M4, R1, M2, P3, M5 worries, then stance.

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


def not_compared(current: Mapping, previous: Mapping | None) -> tuple[list[str], list[str]]:
    """The compared items (COMPARED order) left unanswered this time and last time.

    "No changes" may be said only when both lists are empty: an item missing on either
    side was not compared, and the page says so instead.
    """
    if previous is None:
        return [], []
    return (
        [i for i in COMPARED if not is_answered(current.get(i))],
        [i for i in COMPARED if not is_answered(previous.get(i))],
    )


def previous_hopes(previous: Mapping | None) -> Quote | None:
    """Last visit's H1 ("if treatment worked well..."), to quote beside today's."""
    text = _single(previous or {}, "H1")
    return Quote(text) if text and text.strip() else None


# --- consistency with the questionnaire definition ------------------------------------

# Every item and choice id the rules above read; scales carry no choices.
REFERENCED: dict[str, set[str]] = {
    "H1": set(),
    "M2": {"mixed"},
    "M3": {"controls_me", "punishment"},
    "M4": set(),
    "M5": {"none", "being_controlled", "dependent", *WORRY_PHRASES},
    "P1": {"chose_to_skip", "stopped"},
    "P2": {"felt_better", "someone_told_me"},
    "P3": {"worse", "much_worse"},
    "F1": {"against", "dont_know", "bad_experience"},
    "F2": {"yes"},
    "F3": {"pressured", "not_listened"},
    "W1": {"body_chemistry"},
    "H2": {"none", *LATER_WORRY_PHRASES},
    "R1": set(),
    "R2": {"mostly_me"},
    "R4": {"yes_talk", "yes_not_ready"},
    "R5": {"control_me"},
    "S1": {"not_at_all", *SAFETY_ENDORSED},
}

# The readers above assume these item types; a changed type would silently never fire.
REFERENCED_TYPES: dict[str, str] = {
    "H1": "text",
    "M2": "single",
    "M3": "multi",
    "M4": "scale",
    "M5": "multi",
    "P1": "single",
    "P2": "multi",
    "P3": "single",
    "F1": "multi",
    "F2": "yesno_text",
    "F3": "multi",
    "W1": "multi",
    "H2": "multi",
    "R1": "scale",
    "R2": "single",
    "R4": "single",
    "R5": "single",
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
    answers: Mapping, reached_item_ids: Collection[str], questionnaire: Questionnaire
) -> list[str]:
    """Ids of unanswered items the patient was shown, in questionnaire order.

    Items on a screen never reached are not "skipped": the patient did not see them. A
    standard measure's items are not listed: its line on the page says what it lacks.
    """
    return [
        item_id
        for item_id in questionnaire.item_ids
        if item_id in reached_item_ids
        and not is_answered(answers.get(item_id))
        and not questionnaire.items[item_id].instrument
    ]

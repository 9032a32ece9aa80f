"""The questionnaire's item types, one class each: everything a type means lives here.

A type owns:

- the definition keys it takes, and what an item of it must have (``definition_problem``);
- the form fields that ask it, with their validators and translated messages (``fields``);
- how a posted form reads back into the stored answer, and how a stored answer fills the
  form again (``answer``, ``form_data``);
- how the answer reads on screen and on paper (``show``), and which macro of
  ``templates/patient/_item_types.html`` draws it (``macro``);
- how much of a phone screen it takes (``screen_rows``, with ``patient_forms``' measures);
- its CSV columns and their cells (``csv_columns``, ``csv_cells``, for ``exports``);
- its FHIR shapes: the Questionnaire item and the QuestionnaireResponse items of an
  answer (``fhir_question``, ``fhir_answers``, built with ``fhir.Build``), with the SDC
  rendering hints a renderer draws it by (LHC-Forms: ``tests/browser/test_lhc_forms.py``).

Adding a type means one class here, its entry in ``TYPES`` and one macro; ``exports``,
``fhir`` and ``patient_forms`` ask the type and never name one. A type that has not said
how it maps to FHIR is refused there (``ValueError``) rather than sent half-described.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask_babel import format_decimal, gettext
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _lp
from wtforms import (
    FieldList,
    Form,
    FormField,
    RadioField,
    SelectChoice,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional, ValidationError

from patientapp.questionnaire import display
from patientapp.questionnaire.display import Shown, label, labels
from patientapp.questionnaire.fields import (
    CHOICE_ERROR,
    MultiCheckboxField,
    length_limit,
    strip_spaces,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from flask_wtf import FlaskForm

    from patientapp.exports.fhir import Build
    from patientapp.patient.forms import Measures
    from patientapp.questionnaire.model import Choice, Item

# Keys every item may have in the definition, whatever its type.
COMMON_KEYS = frozenset(
    {"id", "type", "prompt", "short", "practices", "help", "help_closed", "intro", "since"}
)

PREFER_NOT = SelectChoice("", _l("Prefer not to say"))
# SDC rendering hints (HL7 core extensions) for renderers such as LHC-Forms: the control
# a choice is drawn with (the patient pages' radio buttons and check boxes: LHC-Forms
# otherwise hides the choices in a drop-down), and a scale's step and the hint its box
# shows (LHC-Forms draws no lower/upper labels: issue 22, the end labels were lost).
SLIDER_STEP = "http://hl7.org/fhir/StructureDefinition/questionnaire-sliderStepValue"
ENTRY_FORMAT = "http://hl7.org/fhir/StructureDefinition/entryFormat"
ENDS_JOIN = " … "
# Between the choices of one CSV cell (a multi's ids, and their labels): choice ids never
# hold it and the export keeps it out of labels, so a cell splits back on it exactly.
CSV_JOIN = "|"


# --- validators --------------------------------------------------------------------------


class MaxChoices:
    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, form, field):
        if field.data and len(field.data) > self.limit:
            raise ValidationError(_l("Please pick no more than %(n)s.", n=self.limit))


class ExclusiveChoice:
    """A choice such as "No worries" cannot be picked together with others."""

    def __init__(self, item: Item):
        self.exclusive = {c.id: c for c in item.choices if c.exclusive}

    def __call__(self, form, field):
        picked = field.data or []
        lonely = [c for c in picked if c in self.exclusive]
        if lonely and len(picked) > 1:
            raise ValidationError(
                _l(
                    "“%(choice)s” can't be picked together with other answers. "
                    "Please untick one of them.",
                    choice=lazy_label(self.exclusive[lonely[0]]),
                )
            )


class MedicineRow(Form):
    """One row of a medicine list; a plain Form because the section form carries the
    CSRF token."""

    def validate_feeling(self, field):
        # Checked on the feeling: an empty name stops its own validators (Optional).
        if field.data and not (self.name.data or "").strip():
            raise ValidationError(_l("Please write the medicine's name, or clear the choice."))


# --- field builders ----------------------------------------------------------------------


def lazy_label(choice: Choice):
    """A choice's label, translated lazily, in its own context when it has one."""
    return _lp(choice.context, choice.label) if choice.context else _l(choice.label)


def _choices(item: Item) -> list[SelectChoice]:
    if item.measure is not None:  # a standard measure: its official words only
        return [SelectChoice(c.id, display.lazy_choice_label(item, c)) for c in item.choices]
    return [SelectChoice(c.id, lazy_label(c)) for c in item.choices]


def _skippable(choices: list) -> list:
    """A radio group can't be un-ticked without script, so it gets its own way out."""
    return [*choices, PREFER_NOT]


def _radio(label, choices) -> RadioField:
    return RadioField(
        label,
        choices=choices,
        validators=[Optional()],
        invalid_choice_message=CHOICE_ERROR,
        invalid_value_message=CHOICE_ERROR,
    )


def _free_text(label, max_length: int) -> TextAreaField:
    return TextAreaField(
        label,
        filters=[strip_spaces],
        validators=[Optional(), length_limit(max_length)],
        render_kw={"maxlength": max_length, "rows": 4},
    )


# --- the types ---------------------------------------------------------------------------


class ItemType:
    """What every type shares; each type overrides what it does differently."""

    name = ""
    keys: frozenset[str] = frozenset()  # definition keys it takes beyond COMMON_KEYS
    needs_choices = False
    needs_max_length = False
    has_rows = False  # answered in rows the patient can add to

    @property
    def macro(self) -> str:
        """The macro of templates/patient/_item_types.html that draws this type."""
        return self.name

    @property
    def allowed_keys(self) -> frozenset[str]:
        return COMMON_KEYS | self.keys

    def definition_problem(self, raw: dict) -> str | None:
        """What one item's definition lacks for this type, or None."""
        if self.needs_choices and not raw.get("choices"):
            return f"type '{self.name}' needs choices"
        if self.needs_max_length and not raw.get("max_length"):
            return f"type '{self.name}' needs max_length"
        return None

    def fields(self, item: Item, rows: int) -> dict[str, object]:
        """The unbound form fields that ask this item, by field name; ``rows`` is how
        many rows a type with rows shows."""
        raise NotImplementedError

    def form_data(self, item: Item, value) -> dict[str, object]:
        """A stored (not None) answer as form data, to fill the form again."""
        return {item.id: value}

    def answer(self, item: Item, form: FlaskForm):
        """The stored shape of a validated form's answer; None when skipped."""
        return form[item.id].data or None

    def show(self, item: Item, value) -> Shown:
        """How a stored (not None) answer reads on screen and on paper."""
        raise NotImplementedError

    def screen_rows(self, item: Item, measures: Measures) -> float:
        """About how many rows of a phone screen the item takes (``patient_forms``'
        SCREEN_ROWS); by default the question and one row or so per choice."""
        rows = measures.question(item)
        rows += measures.choices(item)
        return rows

    def csv_columns(self, item: Item) -> list[str]:
        """The item's column names in the CSV export; by default one, its id."""
        return [item.id]

    def csv_cells(self, item: Item, value, label: Callable[[Item, str | None], str]) -> list:
        """A stored (not None) answer as its CSV cells, one per column; ``label`` is the
        export's label of a choice id."""
        return [value]

    def fhir_question(self, item: Item, build: Build) -> dict:
        """The item as a FHIR Questionnaire item."""
        raise ValueError(f"item {item.id}: no FHIR mapping for type '{self.name}'")

    def fhir_answers(self, item: Item, value, language: str, build: Build) -> list[dict]:
        """The QuestionnaireResponse items of a stored (not None) answer; ``language`` is
        the one its free text was written in."""
        raise ValueError(f"item {item.id}: no FHIR mapping for type '{self.name}'")

    @staticmethod
    def _with_control(element: dict, code: str) -> dict:
        """A Questionnaire item with an SDC itemControl (``radio-button``, ``check-box``,
        ``slider``) added to its extensions."""
        from patientapp.exports.fhir import ITEM_CONTROL, ITEM_CONTROL_SYSTEM

        control = {"coding": [{"system": ITEM_CONTROL_SYSTEM, "code": code}]}
        element.setdefault("extension", []).append(
            {"url": ITEM_CONTROL, "valueCodeableConcept": control}
        )
        return element

    @staticmethod
    def _with_help(item: Item, element: dict, build: Build) -> dict:
        """A Questionnaire item with the item's help line as a display child."""
        if item.help:
            element.setdefault("item", []).append(
                build.display(f"{item.id}.help", item.help, "help")
            )
        return element


class Single(ItemType):
    """One choice, or "Prefer not to say"; stored as the choice id."""

    name = "single"
    keys = frozenset({"choices"})
    needs_choices = True

    def fields(self, item, rows):
        prompt = display.lazy_prompt(item) if item.measure is not None else _l(item.prompt)
        return {item.id: _radio(prompt, _skippable(_choices(item)))}

    def show(self, item, value):
        return Shown((label(item, value),))

    def screen_rows(self, item, measures):
        return super().screen_rows(item, measures) + measures.skip

    def csv_columns(self, item):
        return [item.id, f"{item.id} label"]

    def csv_cells(self, item, value, label):
        return [value, label(item, value)]

    def fhir_question(self, item, build):
        element = self._with_control(build.choice_item(item.id, item, item.prompt), "radio-button")
        return self._with_help(item, element, build)

    def fhir_answers(self, item, value, language, build):
        return [{"linkId": item.id, "answer": [{"valueCoding": build.coding(item, value)}]}]


class Multi(ItemType):
    """Any number of choices (up to ``max``); stored as a list of choice ids."""

    name = "multi"
    keys = frozenset({"choices", "max"})
    needs_choices = True

    def fields(self, item, rows):
        validators = [Optional(), ExclusiveChoice(item)]
        if item.max:
            validators.append(MaxChoices(item.max))
        return {
            item.id: MultiCheckboxField(
                _l(item.prompt),
                choices=_choices(item),
                validators=validators,
                invalid_choice_message=CHOICE_ERROR,
                invalid_value_message=CHOICE_ERROR,
            )
        }

    def answer(self, item, form):
        return list(form[item.id].data) or None

    def show(self, item, value):
        return Shown(tuple(labels(item, value)))

    def csv_columns(self, item):
        return [item.id, f"{item.id} label"]

    def csv_cells(self, item, value, label):
        return [CSV_JOIN.join(value), CSV_JOIN.join(label(item, v) for v in value)]

    def fhir_question(self, item, build):
        element = build.choice_item(item.id, item, item.prompt)
        element["repeats"] = True
        if item.max:
            element["extension"] = [build.max_occurs(item.max)]
        self._with_control(element, "check-box")
        return self._with_help(item, element, build)

    def fhir_answers(self, item, value, language, build):
        answers = [{"valueCoding": build.coding(item, v)} for v in value]
        return [{"linkId": item.id, "answer": answers}]


class Scale(ItemType):
    """A whole number from ``min`` to ``max``; stored as an int."""

    name = "scale"
    keys = frozenset({"min", "max", "min_label", "max_label"})

    def definition_problem(self, raw):
        if "min" not in raw or "max" not in raw:
            return "a scale needs min and max"
        return super().definition_problem(raw)

    def fields(self, item, rows):
        values = [SelectChoice(str(n)) for n in range(item.min, item.max + 1)]
        return {item.id: _radio(_l(item.prompt), _skippable(values))}

    def form_data(self, item, value):
        return {item.id: str(value)}

    def answer(self, item, form):
        data = form[item.id].data
        return int(data) if data not in (None, "") else None

    def show(self, item, value):
        return Shown(
            (
                gettext(
                    "%(value)s out of %(max)s",
                    value=format_decimal(value),
                    max=format_decimal(item.max),
                ),
            )
        )

    def screen_rows(self, item, measures):
        points = (item.max or 0) - (item.min or 0) + 1
        return measures.question(item) + (2.0 if points <= 5 else 3.5) + measures.skip

    def fhir_question(self, item, build):
        # As SDC describes a scale: an integer slider from min to max in steps of 1, its
        # end labels as display children marked lower and upper. LHC-Forms draws neither
        # a slider nor those children, so the labels are also the entry hint its box
        # shows ("0 = not at all … 10 = very much").
        element = {
            "linkId": item.id,
            "type": "integer",
            **build.text(item.prompt),
            "extension": [
                build.min_value(item.min),
                build.max_value(item.max),
                {"url": SLIDER_STEP, "valueInteger": 1},
            ],
        }
        self._with_control(element, "slider")
        labels = (("lower", item.min_label), ("upper", item.max_label))
        ends = [(end, label) for end, label in labels if label]
        if ends:
            # In the Questionnaire's language only: the display children carry each
            # language (a translation on an extension's value is one the R4B models refuse).
            hint = ENDS_JOIN.join(label for _, label in ends)
            element["extension"].append({"url": ENTRY_FORMAT, "valueString": hint})
            element["item"] = [build.display(f"{item.id}.{end}", label, end) for end, label in ends]
        return self._with_help(item, element, build)

    def fhir_answers(self, item, value, language, build):
        return [{"linkId": item.id, "answer": [{"valueInteger": int(value)}]}]


class Text(ItemType):
    """Free text up to ``max_length``; stored as the text, shown exactly as written."""

    name = "text"
    keys = frozenset({"max_length"})
    needs_max_length = True

    def fields(self, item, rows):
        return {item.id: _free_text(_l(item.prompt), item.max_length)}

    def show(self, item, value):
        return Shown(quote=value)

    def screen_rows(self, item, measures):
        return measures.question(item) + measures.text(item)

    def fhir_question(self, item, build):
        element = {
            "linkId": item.id,
            "type": "text",
            **build.text(item.prompt),
            "maxLength": item.max_length,
        }
        return self._with_help(item, element, build)

    def fhir_answers(self, item, value, language, build):
        return [{"linkId": item.id, "answer": [build.string(value, language)]}]


class MedList(ItemType):
    """Up to ``max_rows`` medicine names, each with a feeling choice; stored as a list
    of ``{"name": ..., "feeling": choice id or None}``."""

    name = "medlist"
    keys = frozenset({"choices", "max_length", "max_rows", "row_label", "choice_label"})
    needs_choices = True
    needs_max_length = True
    has_rows = True

    def fields(self, item, rows):
        row_class = type(
            f"{item.id}Row",
            (MedicineRow,),
            {
                "name": StringField(
                    _l(item.row_label),
                    filters=[strip_spaces],
                    validators=[Optional(), length_limit(item.max_length)],
                    render_kw={"maxlength": item.max_length, "autocomplete": "off"},
                ),
                "feeling": _radio(_l(item.choice_label), _choices(item)),
            },
        )
        rows_field = FieldList(
            # A label of its own: without one WTForms translates a made-up label on every
            # row, and Flask-WTF reloads its catalog from disk for it on each request.
            FormField(row_class, label=_l(item.row_label)),
            label=_l(item.prompt),
            min_entries=rows,
            max_entries=item.max_rows,
        )
        return {item.id: rows_field}

    def answer(self, item, form):
        rows = [
            {"name": row.form.name.data, "feeling": row.form.feeling.data or None}
            for row in form[item.id]
            if (row.form.name.data or "").strip()
        ]
        return rows or None

    def show(self, item, value):
        no_feeling = gettext("no feeling picked")
        return Shown.paired(
            (row["name"], label(item, row.get("feeling")) or no_feeling) for row in value
        )

    def csv_columns(self, item):
        # How many rows were filled, then each row's own columns: a name is free text,
        # so it never shares a cell with another.
        columns = [item.id]
        for n in range(1, item.max_rows + 1):
            columns += [f"{item.id} {n} name", f"{item.id} {n} feeling", f"{item.id} {n} label"]
        return columns

    def csv_cells(self, item, value, label):
        cells = [len(value)]
        for n in range(item.max_rows):
            row = value[n] if n < len(value) else None
            feeling = (row or {}).get("feeling") or ""
            cells += [row["name"], feeling, label(item, feeling)] if row else ["", "", ""]
        return cells

    def fhir_question(self, item, build):
        # A repeating group of name + feeling; its help line is not sent (a display child
        # of a repeating group would stand in every row).
        return {
            "linkId": item.id,
            "type": "group",
            **build.text(item.prompt),
            "repeats": True,
            "extension": [build.max_occurs(item.max_rows)],
            "item": [
                {
                    "linkId": f"{item.id}.name",
                    "type": "string",
                    **build.text(item.row_label),
                    "maxLength": item.max_length,
                },
                self._with_control(
                    build.choice_item(f"{item.id}.feeling", item, item.choice_label),
                    "radio-button",
                ),
            ],
        }

    def fhir_answers(self, item, value, language, build):
        rows = []  # one response item per row
        for row in value:
            parts = [{"linkId": f"{item.id}.name", "answer": [build.string(row["name"], language)]}]
            if row.get("feeling"):
                answer = {"valueCoding": build.coding(item, row["feeling"])}
                parts.append({"linkId": f"{item.id}.feeling", "answer": [answer]})
            rows.append({"linkId": item.id, "item": parts})
        return rows


class YesNoText(ItemType):
    """Yes / no, then free text; stored as ``{"choice": ..., "text": ...}``."""

    name = "yesno_text"
    keys = frozenset({"choices", "max_length", "text_prompt"})
    needs_choices = True
    needs_max_length = True

    def fields(self, item, rows):
        return {
            item.id: _radio(_l(item.prompt), _skippable(_choices(item))),
            f"{item.id}_text": _free_text(_l(item.text_prompt), item.max_length),
        }

    def form_data(self, item, value):
        return {item.id: value.get("choice"), f"{item.id}_text": value.get("text", "")}

    def answer(self, item, form):
        choice, text = form[item.id].data or None, form[f"{item.id}_text"].data or ""
        return {"choice": choice, "text": text} if (choice or text) else None

    def show(self, item, value):
        words = (label(item, value.get("choice")),) if value.get("choice") else ()
        return Shown(words, value.get("text", ""))

    def screen_rows(self, item, measures):
        rows = super().screen_rows(item, measures) + measures.skip
        return rows + (1.0 + measures.text(item))  # the text's own prompt, then its box

    def csv_columns(self, item):
        return [item.id, f"{item.id} label", f"{item.id} text"]

    def csv_cells(self, item, value, label):
        choice = value.get("choice")
        return [choice or "", label(item, choice), value.get("text", "")]

    def fhir_question(self, item, build):
        # The prompt once, on the yes/no (issue 22: on the group as well, LHC-Forms showed
        # it twice); the group carries the intro the patient reads above it, or no text.
        intro = build.text(item.intro) if item.intro else {}
        element = {
            "linkId": item.id,
            "type": "group",
            **intro,
            "item": [
                self._with_control(
                    build.choice_item(f"{item.id}.choice", item, item.prompt), "radio-button"
                ),
                {
                    "linkId": f"{item.id}.text",
                    "type": "text",
                    **build.text(item.text_prompt),
                    "maxLength": item.max_length,
                },
            ],
        }
        return self._with_help(item, element, build)

    def fhir_answers(self, item, value, language, build):
        parts = []
        if value.get("choice"):
            answer = {"valueCoding": build.coding(item, value["choice"])}
            parts.append({"linkId": f"{item.id}.choice", "answer": [answer]})
        if value.get("text"):
            parts.append(
                {"linkId": f"{item.id}.text", "answer": [build.string(value["text"], language)]}
            )
        return [{"linkId": item.id, "item": parts}] if parts else []


TYPES: dict[str, ItemType] = {
    kind.name: kind for kind in (Single(), Multi(), Scale(), Text(), MedList(), YesNoText())
}

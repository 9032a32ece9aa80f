"""Translation tooling: extraction from Python, templates and the questionnaire, and the
catalog check, run on temporary catalogs and source copies (nothing in translations/ is
ever written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from patientapp.cli import i18n as i18n_tools
from patientapp.cli.i18n import (
    catalog_path,
    check_catalog,
    check_catalogs,
    default_translations_dir,
    extract_instrument,
    extract_questionnaire,
    extract_template,
    placeholders,
    shipped_languages,
    single_number_forms,
    template_path,
)
from patientapp.questionnaire import model as questionnaire
from patientapp.questionnaire.instruments import INSTRUMENTS_DIR

ITEM_FIELDS = (
    "prompt",
    "short",
    "help",
    "help_closed",
    "intro",
    "min_label",
    "max_label",
    "row_label",
    "choice_label",
    "text_prompt",
)


@pytest.fixture(scope="module")
def template() -> Catalog:
    """One fresh extract of the real source tree, shared by the tests in this file."""
    return extract_template()


def questionnaire_strings() -> set[str]:
    definition = questionnaire.default()
    # A standard measure's words are never extracted (an official translation or none),
    # and its heading comes from its own file (test_the_instrument_extractor_...).
    strings = {section.title for section in definition.sections if not section.items[0].instrument}
    for item in definition.items.values():
        if item.instrument:
            continue
        strings |= {getattr(item, name) for name in ITEM_FIELDS if getattr(item, name)}
        strings |= {choice.label for choice in item.choices}
    return strings


def extracted_from_toml() -> list[tuple]:
    with questionnaire.DEFINITION_PATH.open("rb") as fh:
        return list(extract_questionnaire(fh, [], [], {}))


def locations(template: Catalog, message_id: str) -> set[str]:
    message = template.get(message_id)
    assert message is not None, f"{message_id!r} was not extracted"
    return {filename for filename, _line in message.locations}


# --- extraction --------------------------------------------------------------------------


def test_extractor_finds_every_questionnaire_string():
    found = {
        message[1] if isinstance(message, tuple) else message
        for _line, _func, message, _comments in extracted_from_toml()
    }
    assert found == questionnaire_strings()
    # A label with a context is extracted as pgettext(context, label).
    assert ("pgettext", ("feelings", "Mixed")) in {
        (func, message) for _line, func, message, _comments in extracted_from_toml()
    }


def test_the_instrument_extractor_takes_only_our_own_words(template):
    """A measure's heading and band labels are ours, translated; its questions and
    answers are its official text only, never in a catalog."""
    for name in ("gad7", "phq9"):
        with (INSTRUMENTS_DIR / f"{name}.toml").open("rb") as fh:
            found = list(extract_instrument(fh, [], [], {}))
        measure = questionnaire.default().instrument(name)
        assert [m for _l, _f, m, _c in found] == [
            measure.title,
            *[("severity", band.label) for band in measure.bands],
        ]
    assert template.get("Mood in the last 2 weeks") is not None
    assert template.get("moderately severe", "severity") is not None
    for phrase in questionnaire.default().instrument("phq9").wordings["en"].items:
        assert template.get(phrase) is None


def test_extractor_comments_name_the_item_and_lines_point_at_the_string():
    results = extracted_from_toml()
    lines = questionnaire.DEFINITION_PATH.read_text(encoding="utf-8").splitlines()
    for lineno, funcname, message, _comments in results:
        assert funcname == ("pgettext" if isinstance(message, tuple) else None)
        text = message[1] if isinstance(message, tuple) else message
        assert text in lines[lineno - 1], (lineno, message)
    comments = {(message, comment) for _l, _f, message, (comment,) in results}
    m3 = questionnaire.default().items["M3"]
    assert (m3.choice("safety_net").label, "M3 choice safety_net") in comments
    assert (questionnaire.default().items["M4"].prompt, "M4 prompt") in comments


def test_a_repeated_label_gets_the_line_under_its_own_item():
    results = extracted_from_toml()
    text = questionnaire.DEFINITION_PATH.read_text(encoding="utf-8")
    m2_line = text[: text.index('id = "M2"')].count("\n") + 1
    m3_line = text[: text.index('id = "M3"')].count("\n") + 1
    mixed = [line for line, _f, message, (comment,) in results if comment == "M2 choice mixed"]
    assert len(mixed) == 1 and m2_line < mixed[0] < m3_line


def test_babel_cfg_extracts_questionnaire_with_translator_comments(template):
    for text in questionnaire_strings():
        assert text in template, text
    prompt = questionnaire.default().items["M4"].prompt
    assert "M4 prompt" in template.get(prompt).auto_comments
    assert "patientapp/questionnaire/definition.toml" in locations(template, prompt)


def test_extract_finds_python_template_and_marker_strings(template):
    assert "patientapp/patient/views.py" in locations(template, "Your code")  # _l(...)
    assert "templates/patient/welcome.html" in locations(template, "Before your visit")
    assert "templates/patient/step.html" in locations(template, "Step %(n)s of %(total)s")
    assert "patientapp/summary/rules.py" in locations(template, "Ambivalence")  # N_(...)


def test_extract_command_writes_the_template(runner, tmp_path):
    result = runner.invoke(args=["i18n", "extract", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    pot = tmp_path / "messages.pot"
    text = pot.read_text(encoding="utf-8")
    assert 'msgid "Your code"' in text
    assert "#. M3 choice safety_net" in text
    with pot.open("rb") as fh:
        assert len([m for m in read_po(fh) if m.id]) > 100


# --- a temporary, fully "translated" catalog ----------------------------------------------


def fake_translation(message_id, forms: int = 2) -> str | tuple[str, ...]:
    """A stand-in translation that keeps every placeholder; a plural gets as many forms as
    the language has (the plural text for every form past the first)."""
    if isinstance(message_id, tuple):
        return tuple(f"XX {message_id[min(n, 1)]}" for n in range(forms))
    return f"XX {message_id}"


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale="es")


def save_catalog(path: Path, catalog: Catalog) -> None:
    with path.open("wb") as fh:
        write_po(fh, catalog)


@pytest.fixture
def filled(runner, tmp_path) -> Path:
    """translations/ copy in tmp_path holding a complete es catalog; returns its folder."""
    result = runner.invoke(args=["i18n", "init", "es", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = catalog_path(tmp_path, "es")
    catalog = read_catalog(path)
    for message in catalog:
        if message.id:
            message.string = fake_translation(message.id, catalog.num_plurals)
    save_catalog(path, catalog)
    return tmp_path


def edit_catalog(directory: Path, change) -> None:
    path = catalog_path(directory, "es")
    catalog = read_catalog(path)
    change(catalog)
    save_catalog(path, catalog)


def first_with(catalog: Catalog, fragment: str):
    return next(m for m in catalog if m.id and fragment in m.id)


def test_check_passes_on_a_complete_catalog(filled, template, runner):
    assert check_catalogs(filled, template) == {"es": []}
    result = runner.invoke(args=["i18n", "check", "--dir", str(filled)])
    assert result.exit_code == 0, result.output
    total = len([m for m in template if m.id])
    assert f"es: {total} messages, 100% translated, 0 fuzzy" in result.output


def test_check_catches_an_untranslated_message(filled, template, runner):
    edit_catalog(filled, lambda c: setattr(c.get("Your code"), "string", ""))
    assert check_catalogs(filled, template)["es"] == ['untranslated: "Your code"']
    result = runner.invoke(args=["i18n", "check", "--dir", str(filled)])
    assert result.exit_code == 1
    assert 'es: untranslated: "Your code"' in result.output
    assert "% translated, 0 fuzzy" in result.output and "100%" not in result.output


def test_check_catches_a_fuzzy_message(filled, template, runner):
    edit_catalog(filled, lambda c: c.get("Before your visit").flags.add("fuzzy"))
    assert check_catalogs(filled, template)["es"] == ['fuzzy: "Before your visit"']
    result = runner.invoke(args=["i18n", "check", "--dir", str(filled)])
    assert result.exit_code == 1
    assert ", 1 fuzzy" in result.output


def test_check_catches_a_renamed_placeholder(filled, template):
    def rename(catalog):
        message = first_with(catalog, "%(n)s")
        message.string = message.string.replace("%(n)s", "%(number)s")

    edit_catalog(filled, rename)
    problems = check_catalogs(filled, template)["es"]
    assert len(problems) == 1
    assert problems[0].startswith("placeholders: ")
    assert "lacks %(n)s" in problems[0] and "adds %(number)s" in problems[0]


def test_check_catches_a_stray_percent_that_would_break_formatting(filled, template):
    def break_it(catalog):
        message = first_with(catalog, "%(n)s")
        message.string += " 100%"

    edit_catalog(filled, break_it)
    problems = check_catalogs(filled, template)["es"]
    assert len(problems) == 1 and problems[0].startswith("bad %-format: ")


def test_check_catches_a_message_missing_from_the_catalog(filled, template, runner):
    edit_catalog(filled, lambda c: c.delete("Your code"))
    assert check_catalogs(filled, template)["es"] == ['missing: "Your code"']
    result = runner.invoke(args=["i18n", "check", "--dir", str(filled)])
    assert result.exit_code == 1 and 'es: missing: "Your code"' in result.output


def message_keys(catalog: Catalog) -> set:
    return {(m.id if isinstance(m.id, str) else tuple(m.id), m.context) for m in catalog if m.id}


def test_committed_template_lists_what_the_code_extracts(template):
    with template_path(default_translations_dir()).open("rb") as fh:
        committed = read_po(fh)
    assert message_keys(committed) == message_keys(template), "run: flask --app app i18n update"


@pytest.fixture
def source_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the source tree with its committed translations/ (messages.pot and every
    catalog), where the i18n commands now extract and check."""
    root = tmp_path / "source"
    real = i18n_tools.PROJECT_ROOT
    root.mkdir()
    shutil.copy(real / "babel.cfg", root / "babel.cfg")
    for folder in ("patientapp", "templates", "translations"):
        shutil.copytree(real / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(i18n_tools, "PROJECT_ROOT", root)
    return root


def test_check_compares_the_catalogs_with_the_code_not_the_saved_template(source_copy, runner):
    passing = runner.invoke(args=["i18n", "check"])
    assert passing.exit_code == 0, passing.output
    with (source_copy / "patientapp" / "web.py").open("a", encoding="utf-8") as fh:
        fh.write('\nADDED = _l("A string just added to the code")\n')
    result = runner.invoke(args=["i18n", "check"])
    assert result.exit_code == 1
    languages = shipped_languages(source_copy / "translations")
    assert len(languages) >= 6
    problems = [line for line in result.output.splitlines() if " messages, " not in line]
    assert problems == [f'{lang}: missing: "A string just added to the code"' for lang in languages]


def test_check_reports_stale_entries(filled, template):
    edit_catalog(filled, lambda c: c.add("Removed from the code", "XX Removed"))
    problems = check_catalogs(filled, template)["es"]
    assert problems == ['stale (no longer in the code): "Removed from the code"']


# --- placeholders and plurals, on small in-memory catalogs ----------------------------------


def test_placeholders_cover_named_percent_and_braces():
    assert placeholders("Step %(n)s of %(total)d, {name} and {when:%H}") == {
        "%(n)s",
        "%(total)d",
        "{name}",
        "{when}",
    }
    assert placeholders("100%% sure, {{literal}}") == set()


def plural_catalogs(strings: tuple[str, ...]) -> tuple[Catalog, Catalog]:
    template = Catalog()
    template.add(("%(num)s file", "%(num)s files"))
    catalog = Catalog(locale="fr")
    catalog.add(("%(num)s file", "%(num)s files"), strings)
    return template, catalog


def french_forms(*forms: str) -> tuple[str, ...]:
    """As many French plural forms as this Babel's CLDR data has (2, or 3 with "many"),
    the given ones first and the last repeated."""
    count = Catalog(locale="fr").num_plurals
    return tuple(forms[min(i, len(forms) - 1)] for i in range(count))


def test_check_looks_at_every_plural_form():
    template, good = plural_catalogs(french_forms("%(num)s fichier", "%(num)s fichiers"))
    assert check_catalog("fr", good, template).problems == []
    template, bad = plural_catalogs(french_forms("%(num)s fichier", "%(nombre)s fichiers"))
    problems = check_catalog("fr", bad, template).problems
    assert problems
    assert all(p.startswith("placeholders (form ") for p in problems)
    assert problems[0].startswith("placeholders (form 1): ")
    template, empty = plural_catalogs(french_forms("%(num)s fichier", ""))
    assert check_catalog("fr", empty, template).problems == ['untranslated: "%(num)s file"']


def test_check_counts_plural_forms_from_the_language():
    forms = french_forms("%(num)s fichier", "%(num)s fichiers")
    template, short = plural_catalogs(forms[:-1])
    [problem] = check_catalog("fr", short, template).problems
    assert problem == (
        f'plural forms: "%(num)s file" has {len(forms) - 1}, the language needs {len(forms)}'
    )


def test_a_form_for_one_number_may_say_it_in_words():
    """Arabic's forms for 1 and 2 ("دقيقة واحدة", "دقيقتين") need no digit: the noun says
    it, and "2 دقيقتين" reads "2 two-minutes". As GNU msgfmt allows, a form the language's
    rule gives to a single number may leave out the count, and only the count."""
    template = Catalog()
    template.add(("%(clinic)s: about %(num)d minute", "%(clinic)s: about %(num)d minutes"))
    catalog = Catalog(locale="ar")
    assert single_number_forms(catalog) == {0, 1, 2}
    words = ["%(clinic)s: 0 دقيقة", "%(clinic)s: دقيقة واحدة", "%(clinic)s: دقيقتين"]
    digits = ["%(clinic)s: %(num)d دقائق", "%(clinic)s: %(num)d دقيقة", "%(clinic)s: %(num)d دقيقة"]
    ids = ("%(clinic)s: about %(num)d minute", "%(clinic)s: about %(num)d minutes")
    catalog.add(ids, tuple(words + digits))
    assert check_catalog("ar", catalog, template).problems == []
    catalog[ids].string = (*words, "%(clinic)s: دقائق", *digits[1:])  # 3 to 10
    [problem] = check_catalog("ar", catalog, template).problems
    assert problem.startswith("placeholders (form 3): ") and "lacks %(num)d" in problem
    catalog[ids].string = ("%(clinic)s: 0 دقيقة", "دقيقة واحدة", *words[2:], *digits)
    [problem] = check_catalog("ar", catalog, template).problems  # never another placeholder
    assert problem.startswith("placeholders (form 1): ") and "lacks %(clinic)s" in problem
    assert single_number_forms(Catalog(locale="fr")) == set()  # 0 and 1 share a form


def test_check_catches_mismatched_brace_placeholders():
    template = Catalog()
    template.add("Hello {name}")
    catalog = Catalog(locale="es")
    catalog.add("Hello {name}", "Hola {nombre}")
    [problem] = check_catalog("es", catalog, template).problems
    assert problem == ('placeholders: "Hello {name}": translation lacks {name}; adds {nombre}')


# --- init, update, compile ----------------------------------------------------------------


def test_update_brings_new_strings_untranslated_not_guessed(filled, template):
    newer = Catalog()
    for message in template:
        if message.id:
            newer.add(message.id, context=message.context)
    newer.add("Your codes")  # close to "Your code": fuzzy matching would guess
    with i18n_tools.template_path(filled).open("wb") as fh:
        write_po(fh, newer)
    i18n_tools.update_catalogs(filled)
    catalog = read_catalog(catalog_path(filled, "es"))
    added = catalog.get("Your codes")
    assert added.string == "" and not added.fuzzy
    assert catalog.get("Your code").string == "XX Your code"
    assert check_catalogs(filled, newer)["es"] == ['untranslated: "Your codes"']


def test_update_command_merges_into_every_catalog(filled, runner):
    edit_catalog(filled, lambda c: c.delete("Your code"))
    result = runner.invoke(args=["i18n", "update", "--dir", str(filled)])
    assert result.exit_code == 0, result.output
    assert read_catalog(catalog_path(filled, "es")).get("Your code").string == ""
    assert (filled / "messages.pot").is_file()


def test_init_refuses_to_replace_a_catalog_or_create_one_for_english(filled, runner):
    again = runner.invoke(args=["i18n", "init", "es", "--dir", str(filled)])
    assert again.exit_code != 0 and "exists" in again.output
    english = runner.invoke(args=["i18n", "init", "en", "--dir", str(filled)])
    assert english.exit_code != 0 and "source language" in english.output


def test_compile_writes_mo_beside_the_catalog(filled, runner):
    result = runner.invoke(args=["i18n", "compile", "--dir", str(filled)])
    assert result.exit_code == 0, result.output
    assert (filled / "es" / "LC_MESSAGES" / "messages.mo").is_file()


def test_compile_fails_on_what_babel_finds_broken(filled, runner):
    def break_it(catalog):
        message = first_with(catalog, "%(n)s")
        message.string = message.string.replace("%(n)s", "%(number)s")

    edit_catalog(filled, break_it)
    result = runner.invoke(args=["i18n", "compile", "--dir", str(filled)])
    assert result.exit_code == 1 and "errors in the catalogs" in result.output


def test_check_with_no_catalogs_passes(tmp_path, runner):
    result = runner.invoke(args=["i18n", "check", "--dir", str(tmp_path)])
    assert result.exit_code == 0 and "No catalogs" in result.output


def test_problem_lines_quote_message_ids_as_json(filled, template):
    # An id with quotation marks in it (“%(quote)s”) still reads back whole from the line.
    edit_catalog(filled, lambda c: setattr(first_with(c, "“%(quote)s”"), "string", ""))
    [problem] = check_catalogs(filled, template)["es"]
    message_id = problem.split(": ", 1)[1]
    assert "“%(quote)s”" in json.loads(message_id)

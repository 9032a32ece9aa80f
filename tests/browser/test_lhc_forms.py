"""The app's Questionnaire and a finished visit's QuestionnaireResponse in LHC-Forms (npm
`lforms`, NLM's form renderer, which nobody on the project wrote), in Debian's Chromium.

LHC-Forms' built files are served from tests/fhir_validator/node_modules by a small HTTP
server on loopback; every request for anything else is refused and listed, so nothing
leaves the machine. The documents come from the app's FHIR API with a token made on the
Integrations page, as an integration engine reads them.

What a person sees in the rendered form: every question's and section's prompt exactly
once (F2's yes/no and its text included), the ends of the M4 scale, S1's four choices.
Then a sent visit's response is merged into the form and read back out of it: every
answer comes back as sent.

Needs Chromium and `npm ci --prefix tests/fhir_validator`; without them the test skips,
unless PATIENTAPP_REQUIRE_BROWSER=1 (set in CI) makes that a failure.
"""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import create_user, csrf_from, finish_visit, login

from .conftest import _unavailable

pytestmark = pytest.mark.browser

LFORMS = Path(__file__).resolve().parents[1] / "fhir_validator" / "node_modules" / "lforms"
BUILT = LFORMS / "dist" / "lforms"
# What the page loads, as LHC-Forms' README lists it (lhc-forms.js is runtime, polyfills
# and main in one file), with the R4 support; at the end of the body, as they need it.
SCRIPTS = (
    "webcomponent/assets/lib/zone.min.js",
    "webcomponent/lhc-forms.js",
    "fhir/R4/lformsFHIR.min.js",
)
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LHC-Forms</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/lforms/webcomponent/styles.css">
</head><body><div id="form"></div>
{scripts}
</body></html>
"""
RENDER_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def lforms(browser_available) -> Path:
    needed = ("package.json", *(f"dist/lforms/{script}" for script in SCRIPTS))
    missing = [name for name in needed if not (LFORMS / name).exists()]
    if missing:
        _unavailable(
            f"LHC-Forms is not installed ({missing[0]} is missing): "
            "npm ci --prefix tests/fhir_validator"
        )
    return BUILT


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass  # the test's output is not the place for every file LHC-Forms loads


@pytest.fixture(scope="module")
def lforms_server(lforms, tmp_path_factory):
    """LHC-Forms' files and the empty page, on loopback; yields the page's address."""
    root = tmp_path_factory.mktemp("lforms")
    (root / "lforms").symlink_to(lforms, target_is_directory=True)
    tags = "\n".join(f'<script src="/lforms/{script}"></script>' for script in SCRIPTS)
    (root / "index.html").write_text(PAGE.format(scripts=tags), "utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- the documents, from the app's API ---------------------------------------------------------


def _token(app) -> str:
    create_user(app, "admin@example.org", "admin")
    admin = app.test_client()
    assert login(admin, "admin@example.org").status_code == 302
    page = admin.get("/staff/admin/integrations").get_data(as_text=True)
    made = admin.post(
        "/staff/admin/integrations", data={"csrf_token": csrf_from(page), "name": "LHC-Forms"}
    )
    assert made.status_code == 200
    return made.get_data(as_text=True).split('<code id="new-token">')[1].split("</code>")[0]


def _read(client, token: str, url: str) -> dict:
    response = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, (url, response.get_data(as_text=True))
    return json.loads(response.get_data(as_text=True))


@pytest.fixture
def documents(app) -> tuple[dict, dict]:
    """The Questionnaire and the response of one sent visit (every item answered)."""
    finish_visit(app)
    token = _token(app)
    client = app.test_client()
    questionnaire = _read(client, token, "/api/fhir/Questionnaire/reflection")
    bundle = _read(client, token, "/api/fhir/QuestionnaireResponse")
    [response] = [entry["resource"] for entry in bundle["entry"]]
    assert response["status"] == "completed"
    return questionnaire, response


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture
def form_page(chromium, lforms_server):
    """A page with LHC-Forms loaded; any request off loopback is refused and listed in
    ``page.outside``."""
    context = chromium.new_context(viewport={"width": 1000, "height": 900}, locale="en-US")
    context.set_default_timeout(RENDER_TIMEOUT_MS)
    outside: list[str] = []
    errors: list[str] = []

    def only_local(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(lforms_server)
    page.wait_for_function("() => window.LForms && LForms.Util && LForms.Util.addFormToPage")
    # The guard holds: a request off the machine fails and is listed.
    probe = "https://example.org/lforms-probe"
    refused = page.evaluate("(url) => fetch(url).then(() => false, () => true)", probe)
    assert refused and outside == [probe]
    outside.clear()
    page.outside = outside
    page.errors = errors
    try:
        yield page
    finally:
        context.close()


def _render(page, questionnaire: dict, response: dict | None = None) -> None:
    """The Questionnaire drawn into #form, with the response merged in when given."""
    page.evaluate(
        """async ([questionnaire, response]) => {
            let form = questionnaire;
            if (response) {
                form = LForms.Util.convertFHIRQuestionnaireToLForms(questionnaire, 'R4');
                form = LForms.Util.mergeFHIRDataIntoLForms(
                    'QuestionnaireResponse', response, form, 'R4');
            }
            await LForms.Util.addFormToPage(form, 'form', {fhirVersion: 'R4'});
        }""",
        [questionnaire, response],
    )
    page.wait_for_selector("#form lhc-item", state="attached")


# What a person sees: the visible text of the form, one string per text node, leaving out
# buttons (LHC-Forms' own "+ <group's text>" that adds a row to a repeating group).
SEEN = """() => {
    const seen = [];
    const walker = document.createTreeWalker(
        document.getElementById('form'), NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const text = node.textContent.replace(/\\s+/g, ' ').trim();
        const element = node.parentElement;
        if (text && !element.closest('button') && element.checkVisibility()) {
            seen.push(text);
        }
    }
    return seen;
}"""
# A form's answers, read back out of LHC-Forms as a QuestionnaireResponse.
READ_BACK = "() => LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4')"
# LHC-Forms' message for a text over its maxLength.
LONGER = "must have a total length less than or equal to"


def _texts(items, into: list) -> list:
    """Every prompt of the Questionnaire a person reads (not the help lines: those sit
    behind LHC-Forms' help button), with its linkId."""
    for element in items:
        if element["type"] != "display" and "text" in element:
            into.append((element["linkId"], element["text"]))
        _texts(element.get("item", ()), into)
    return into


def _answers(items, path: str = "") -> list[tuple[str, tuple]]:
    """Every answer of a response, where it sits (repeated groups by their row) and its
    value: a coding as system and code, a number, a text."""
    found = []
    rows: dict[str, int] = {}
    for element in items or ():
        link = element["linkId"]
        rows[link] = rows.get(link, 0) + 1
        where = f"{path}/{link}#{rows[link]}"
        for answer in element.get("answer", ()):
            if "valueCoding" in answer:
                value = ("coding", answer["valueCoding"]["system"], answer["valueCoding"]["code"])
            elif "valueInteger" in answer:
                value = ("integer", answer["valueInteger"])
            else:
                value = ("string", answer["valueString"])
            found.append((where, value))
            found += _answers(answer.get("item"), where)
        found += _answers(element.get("item"), where)
    return found


def _item(page, link_id: str):
    """One item's part of the rendered form (LHC-Forms ids it by linkId, then its row and
    its parents' rows), its first row."""
    return page.locator(f'[id^="item-{link_id}/"]').first


def test_the_questionnaire_reads_as_the_patient_reads_it(form_page, documents):
    """Issue 22, as LHC-Forms 40.1.3 showed the Questionnaire before: F2's prompt twice
    (the group's text and its yes/no's), M4's and R1's end labels nowhere (its lower and
    upper display children are not drawn; the box said "Type a number"), and every
    choice list, S1's included, closed in a "Select one" drop-down."""
    questionnaire, _response = documents
    _render(form_page, questionnaire)
    seen = form_page.evaluate(SEEN)
    prompts = _texts(questionnaire["item"], [])
    assert {link for link, _ in prompts} >= {"F2", "F2.choice", "F2.text", "M4", "S1"}
    twice = {
        link: seen.count(text)
        for link, text in prompts
        if seen.count(text) != 1 and not link.endswith((".lower", ".upper"))
    }
    assert twice == {}, "each prompt once"
    # The one place a prompt comes back is LHC-Forms' own button that adds a medicine.
    m1 = next(text for link, text in prompts if link == "M1")
    buttons = [
        " ".join(text.split()) for text in form_page.locator("#form button").all_inner_texts()
    ]
    assert buttons.count(f"+ {m1}") == 1
    definition = {item["linkId"]: item for group in questionnaire["item"] for item in group["item"]}
    # F2: the prompt once, then its yes/no, then the text box with its own prompt.
    f2 = _item(form_page, "F2")
    assert f2.inner_text().count(definition["F2"]["item"][0]["text"]) == 1
    # M4: the scale's ends, in the box a person types the number into.
    m4 = definition["M4"]
    ends = [child["text"] for child in m4["item"] if child["type"] == "display"]
    assert ends == ["0 = not at all", "10 = very much"]
    box = _item(form_page, "M4").locator("input")
    assert box.is_visible() and box.input_value() == ""
    hint = box.get_attribute("placeholder")
    assert hint == "0 = not at all … 10 = very much"
    # S1: its four choices on screen, each one tap away.
    s1 = _item(form_page, "S1")
    shown = [
        " ".join(label.inner_text().split())
        for label in s1.locator("label:has(input[type=radio])").all()
        if label.is_visible()
    ]
    choices = [option["valueCoding"]["display"] for option in definition["S1"]["answerOption"]]
    assert shown == choices
    assert choices == ["Not at all", "Several days", "More than half the days", "Nearly every day"]
    assert form_page.outside == [], "a request left the machine"
    assert form_page.errors == []


def test_a_sent_visit_merges_in_and_reads_back_whole(form_page, documents):
    questionnaire, response = documents
    _render(form_page, questionnaire, response)
    sent = _answers(response["item"])
    assert len(sent) >= 30
    read = form_page.evaluate(READ_BACK)
    assert _answers(read["item"]) == sent
    # And a person sees them: the number, the text, the safety answer.
    assert _item(form_page, "M4").locator("input").input_value() == "8"
    assert _item(form_page, "F2.text").locator("textarea").input_value() == (
        "My mother says pills are weakness."
    )
    s1 = _item(form_page, "S1")
    assert s1.locator("label:has(input:checked)").inner_text().strip() == "Not at all"
    assert form_page.outside == [], "a request left the machine"
    assert form_page.errors == []


def test_lengths_count_as_lhc_forms_counts_them(form_page, documents):
    """Issue 22 (maxLength in UTF-16 code units): 150 emoji are 300 units, T2's limit,
    and LHC-Forms takes them; one more is over its limit as it is over the app's."""
    questionnaire, response = documents
    [t2] = [e for group in response["item"] for e in group["item"] if e["linkId"] == "T2"]
    for emoji, problems in ((150, None), (151, [f"{t2['text']} {LONGER} 300."])):
        t2["answer"][0]["valueString"] = "\N{GRINNING FACE}" * emoji
        _render(form_page, questionnaire, response)
        assert form_page.evaluate("() => LForms.Util.checkValidity()") == problems, emoji
    assert form_page.errors == []

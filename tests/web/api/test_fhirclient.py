"""The API driven by a standard FHIR client nobody on the project wrote: SMART on FHIR's
python `fhirclient` (its R4 models parse every resource strictly), over real HTTP on
loopback, as an integration engine would: the CapabilityStatement first, then a search
whose pages it follows by their `next` links, then a read of each entry."""

from __future__ import annotations

import threading
import warnings

import pytest
from fhirclient import client as fhir_client
from fhirclient.models.bundle import Bundle
from fhirclient.models.codesystem import CodeSystem
from fhirclient.models.documentreference import DocumentReference
from fhirclient.models.flag import Flag
from fhirclient.models.observation import Observation
from fhirclient.models.questionnaire import Questionnaire
from fhirclient.models.questionnaireresponse import QuestionnaireResponse
from fhirclient.server import FHIRNotFoundException
from werkzeug.serving import make_server

from patientapp.domain import visits
from patientapp.exports import fhir
from patientapp.web.context import close_thread_db, get_db
from tests.conftest import FULL_ANSWERS, create_user, finish_visit
from tests.web.api.test_integrations import new_token


@pytest.fixture
def served(app):
    """The app on a free loopback port for the length of the test."""

    def one_request(environ, start_response):
        try:
            return list(app(environ, start_response))
        finally:  # the serving thread's kept connection, closed by the test's end
            close_thread_db()

    server = make_server("127.0.0.1", 0, one_request)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/fhir/"
    server.shutdown()
    thread.join(5)


def engine(base: str, token: str) -> fhir_client.FHIRClient:
    smart = fhir_client.FHIRClient(settings={"app_id": "ehr-interface", "api_base": base})
    smart.server.session.headers["Authorization"] = f"Bearer {token}"
    return smart


def test_a_standard_client_syncs_reads_and_resolves(app, admin, served, clock):
    user = create_user(app, "dr@example.org", "psychiatrist")
    sent = []
    for n in range(5):
        sent.append(finish_visit(app, ref=f"P-{n}", in_person=("T2",) if n == 1 else ()).visit_id)
        clock.advance(minutes=1)
    token = new_token(admin)
    smart = engine(served, token)
    statement = smart.server.capabilityStatement  # parsed by the client's R4 model
    assert statement.fhirVersion == "4.0.1"
    [rest] = statement.rest
    assert {r.type for r in rest.resource} == {
        "QuestionnaireResponse",
        "Observation",
        "Flag",
        "DocumentReference",
        "Questionnaire",
        "CodeSystem",
        "StructureDefinition",
    }
    search = QuestionnaireResponse.where(struct={"_lastUpdated": "ge2026-11-25", "_count": "2"})
    pages = 0
    resources = []
    for bundle in search.perform_iter(smart.server):
        assert isinstance(bundle, Bundle) and bundle.total == 5
        pages += 1
        if pages == 1:  # a visit changes after page 1: nothing is lost or repeated
            with app.app_context():
                assert visits.mark_reviewed(get_db(), sent[0], user, clock())
        resources += [entry.resource for entry in bundle.entry or []]
    assert pages == 3
    ids = [r.id for r in resources]
    assert len(set(ids)) == 5 and len(ids) == 6  # the reviewed visit again, once
    assert ids[-1] == ids[0]
    assert resources[-1].meta.versionId != resources[0].meta.versionId
    for resource in resources[1:]:
        read = QuestionnaireResponse.read(resource.id, smart.server)
        assert read.as_json() == resource.as_json()
        assert read.status == "completed"
        assert read.identifier.value == f"urn:uuid:{read.id}"
    held = [
        e.valueString for r in resources for e in r.extension or [] if e.url == fhir.HELD_IN_PERSON
    ]
    assert held == ["T2"]  # named, never sent
    questionnaire = Questionnaire.read("reflection", smart.server)
    for item in questionnaire.item:
        for question in item.item or []:
            for option in question.answerOption or []:
                system = option.valueCoding.system
                if system == "http://loinc.org":
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    [found] = CodeSystem.where(struct={"url": system}).perform_resources(
                        smart.server
                    )
                assert option.valueCoding.code in {c.code for c in found.concept}
    with pytest.raises(FHIRNotFoundException):
        QuestionnaireResponse.read("no-such-visit", smart.server)


def test_a_standard_client_reads_what_a_record_looks_for(app, admin, served, clock):
    """The safety Observations, the alert's Flag and the one page's DocumentReference,
    searched and read back by the client's R4 models; the questionnaire a response names
    found by its canonical."""
    answers = {**FULL_ANSWERS, 10: {"S1": "more_than_half"}}
    finish_visit(app, answers=answers, ref="P-1", in_person=("T2",))
    token = new_token(admin)
    smart = engine(served, token)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        [observation] = Observation.where(struct={"_count": "5"}).perform_resources(smart.server)
        [flag] = Flag.where(struct={}).perform_resources(smart.server)
        [document] = DocumentReference.where(struct={}).perform_resources(smart.server)
        [response] = QuestionnaireResponse.where(struct={}).perform_resources(smart.server)
        url, _, version = response.questionnaire.partition("|")
        [questionnaire] = Questionnaire.where(
            struct={"url": url, "version": version}
        ).perform_resources(smart.server)
    assert observation.valueCodeableConcept.coding[0].code == "LA6570-1"
    assert observation.derivedFrom[0].reference == f"QuestionnaireResponse/{response.id}"
    assert flag.status == "active" and flag.category[0].coding[0].code == "safety"
    assert document.content[0].attachment.contentType == "text/plain; charset=utf-8"
    assert questionnaire.version == version
    for resource in (observation, flag, document):
        read = type(resource).read(resource.id, smart.server)
        assert read.as_json() == resource.as_json()

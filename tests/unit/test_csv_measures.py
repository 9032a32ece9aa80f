"""The standard measures (PHQ-9, GAD-7) in the CSV export: columns per item (as every
single choice: id, label, status), and per measure its total and band after the last of
its items; empty when there is no total, and never from a held answer."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from patientapp.db import storage
from patientapp.domain.records import Visit
from patientapp.exports import csv as exports
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.unit.test_fhir_measures import ANSWERS, answered_visit

Q = questionnaire.default()


def visit(status="submitted", offered="phq9 gad7", ref="CSV-1") -> Visit:
    return Visit(
        id=1,
        patient_ref=ref,
        appointment_at=datetime(2026, 11, 25, 14, 30),
        token_hash="token",
        code_hash="code",
        expires_at=datetime(2026, 11, 25, 23, 59, 59),
        created_at=datetime(2026, 11, 25, 9, 0),
        started_at=datetime(2026, 11, 25, 9, 1),
        submitted_at=datetime(2026, 11, 25, 9, 10) if status == "submitted" else None,
        status=status,
        questionnaire_version=Q.version,
        measures=offered,
        measures_offered=offered,
    )


def cells(app, record: Visit, answers=ANSWERS, held=()) -> dict[str, object]:
    header = exports.header(Q)
    with app.test_request_context():
        row = exports.row(Q, record, answers, set(held))
    return dict(zip(header, row, strict=True))


def test_each_measure_has_its_items_then_its_total_and_band():
    header = exports.header(Q)
    assert len(header) == len(set(header))
    at = header.index
    assert header[at("GAD7_7") : at("GAD7_7") + 4] == [
        "GAD7_7",
        "GAD7_7 label",
        "gad7 total",
        "gad7 band",
    ]
    # PHQ-9's last item is S1, asked as its item 9 in the safety step.
    assert header[at("PHQ9_8") : at("PHQ9_8") + 2] == ["PHQ9_8", "PHQ9_8 label"]
    assert header[at("S1") : at("S1") + 4] == ["S1", "S1 label", "phq9 total", "phq9 band"]
    assert at("GAD7_1") < at("gad7 total") < at("PHQ9_1") < at("phq9 total")
    statuses = [name for name in header if name.endswith(exports.STATUS_SUFFIX)]
    assert statuses == [f"{item_id} status" for item_id in Q.item_ids]
    assert "phq9 total status" not in header
    assert header[-len(statuses) :] == statuses


def test_an_answered_visit_has_its_totals_bands_and_items(app):
    row = cells(app, visit())
    assert (row["phq9 total"], row["phq9 band"]) == (8, "mild")
    assert (row["gad7 total"], row["gad7 band"]) == (16, "severe")
    assert (row["PHQ9_1"], row["PHQ9_1 label"], row["PHQ9_1 status"]) == (
        "more_than_half",
        "More than half the days",
        "answered",
    )
    assert (row["GAD7_7"], row["GAD7_7 label"]) == ("not_at_all", "Not at all")
    assert row["S1"] == "not_at_all" and row["S1 status"] == "answered"


def test_a_held_item_leaves_no_total_and_no_cell(app):
    row = cells(app, visit(), held=("PHQ9_3",))
    assert (row["PHQ9_3"], row["PHQ9_3 label"], row["PHQ9_3 status"]) == ("", "", "held")
    assert (row["phq9 total"], row["phq9 band"]) == ("", "")
    assert row["gad7 total"] == 16


def test_a_skipped_item_leaves_no_total(app):
    row = cells(app, visit(), answers={**ANSWERS, "S1": None})
    assert row["S1 status"] == "skipped"
    assert (row["phq9 total"], row["phq9 band"]) == ("", "")
    assert row["gad7 band"] == "severe"


def test_a_measure_not_offered_is_not_asked_and_has_no_total(app):
    row = cells(app, visit(offered="gad7"))
    assert row["gad7 total"] == 16
    assert (row["phq9 total"], row["phq9 band"]) == ("", "")
    for n in range(1, 9):
        assert (row[f"PHQ9_{n}"], row[f"PHQ9_{n} status"]) == ("", "not_asked")
    # S1 is asked whatever the measures: the safety question.
    assert (row["S1"], row["S1 status"]) == ("not_at_all", "answered")
    none = cells(app, visit(offered=""))
    assert {none[f"{m} {c}"] for m in ("phq9", "gad7") for c in ("total", "band")} == {""}
    assert none["GAD7_1 status"] == "not_asked"


@pytest.mark.parametrize("status", ["in_progress", "cancelled"])
def test_a_visit_not_sent_has_no_total(app, status):
    row = cells(app, visit(status=status))
    assert (row["phq9 total"], row["gad7 total"], row["gad7 band"]) == ("", "", "")
    assert row["PHQ9_1 status"] == "not_sent"


def test_the_download_reads_back_with_the_csv_module(app, clock):
    """Through storage as the export reads it: a visit with both measures, one with an
    item held, one without measures."""
    answered = answered_visit(app, clock, ref="BOTH")
    held = answered_visit(app, clock, held=("GAD7_2",), ref="HELD")
    without = answered_visit(app, clock, measures=(), ref="NONE")
    with app.test_request_context():
        db = get_db()
        rows = []
        for visit_id in (answered, held, without):
            answers, in_person = storage.answers_for(db, visit_id)
            rows.append((storage.get_visit(db, visit_id), answers, in_person))
        text = exports.to_csv(Q, rows, language="es")
    assert text.startswith(exports.BOM)
    found = {r["patient_ref"]: r for r in csv.DictReader(io.StringIO(text[1:], newline=""))}
    both = found["BOTH"]
    assert (both["phq9 total"], both["phq9 band"]) == ("8", "mild")
    assert (both["gad7 total"], both["gad7 band"]) == ("16", "severe")
    # The measure's words are its official text's (no Spanish one: English), never ours.
    assert both["GAD7_1 label"] == "Nearly every day"
    assert (found["HELD"]["gad7 total"], found["HELD"]["GAD7_2 status"]) == ("", "held")
    assert found["HELD"]["phq9 total"] == "8"
    assert found["NONE"]["phq9 total"] == found["NONE"]["gad7 band"] == ""
    assert found["NONE"]["PHQ9_1 status"] == "not_asked"
    for row in found.values():
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value

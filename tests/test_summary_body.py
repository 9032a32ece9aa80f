"""The summary body shows answers only: held items read "to discuss in person", items in
sections never reached read "not reached", skipped items are named once, in the footer."""

from __future__ import annotations

from contextlib import closing

from conftest import FULL_ANSWERS, finish_visit
from test_staff import summary_on_page

from patientapp import storage


def rows(page: dict) -> dict[str, str]:
    return {label: answer for _title, block in page["blocks"] for label, answer in block}


def summary(client, visit_id) -> tuple[dict, str]:
    html = client.get(f"/staff/visits/{visit_id}/summary").get_data(as_text=True)
    text = client.get(f"/staff/visits/{visit_id}/summary.txt").get_data(as_text=True)
    return summary_on_page(html), text


def test_held_items_read_to_discuss_in_person(app, psychiatrist):
    invitation = finish_visit(app, in_person=["M4", "H1"])
    page, text = summary(psychiatrist, invitation.visit_id)
    body = rows(page)
    assert body["How much they need it to stay well"] == "to discuss in person"
    assert body["If treatment worked well"] == "to discuss in person"
    assert body["Stance"] == "to discuss in person"  # its need part is held
    assert "- How much they need it to stay well: to discuss in person" in text
    assert "Skipped" not in " ".join(body.values())


def test_skipped_items_are_left_out_of_the_body_and_named_in_the_footer(app, psychiatrist):
    invitation = finish_visit(app, {**FULL_ANSWERS, 3: {"P1": "chose_to_skip"}})
    page, text = summary(psychiatrist, invitation.visit_id)
    assert "Stopped a medicine on their own before" not in rows(page)
    assert "Last two weeks" in rows(page)
    assert text.count("Stopped a medicine on their own before") == 1
    assert "Skipped: Stopped a medicine on their own before" in text


def test_items_in_sections_never_reached_read_not_reached(app, psychiatrist):
    invitation = finish_visit(app)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        db.execute("UPDATE visits SET furthest_step = 4 WHERE id = ?", (invitation.visit_id,))
        db.execute(
            "DELETE FROM answers WHERE visit_id = ? AND item_id IN ('W1', 'W2', 'H1', 'H2')",
            (invitation.visit_id,),
        )
        db.conn.commit()
    page, text = summary(psychiatrist, invitation.visit_id)
    body = rows(page)
    assert body["What causes their difficulties"] == "not reached"
    assert body["Ease of voicing doubts"] == "not reached"
    assert body["People close to them and medicine"] != "not reached"
    assert "- What the medicine does: not reached" in text
    footer = [line for line in text.splitlines() if line.startswith("Skipped:")]
    assert not any("What causes their difficulties" in line for line in footer)

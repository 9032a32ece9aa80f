"""Migrations apply in the order their names say, on a new database and on one made by an
earlier version."""

import sqlite3

from patientapp.db import storage


def _names() -> list[str]:
    return [migration.name for migration in storage.migrations._migrations]


def test_migrations_are_defined_in_the_order_of_their_numbers():
    names = _names()
    assert names == sorted(names)
    assert len(set(names)) == len(names)


def test_a_new_database_records_every_migration_in_order(tmp_path):
    path = tmp_path / "new.db"
    storage.initialise(path)
    with sqlite3.connect(path) as connection:
        applied = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = 'patientapp' ORDER BY id"
            )
        ]
    connection.close()
    assert applied == _names()


def test_m100_gives_existing_visits_a_uuid_and_their_change_order(tmp_path):
    """A database made before issue 22: each visit gets a random UUID (never its row id)
    and a change sequence in the order of its last change; later changes go on from there."""
    from sqlite_utils import Database

    path = tmp_path / "old.db"
    db = Database(sqlite3.connect(path))
    earlier = [m for m in storage.migrations._migrations if m.name < "m100"]
    for migration in earlier:
        migration.fn(db)
    columns = "patient_ref, appointment_at, token_hash, code_hash, expires_at, created_at"
    for n, (started, submitted) in enumerate(
        [
            ("2026-11-25T09:00:00+00:00", "2026-11-25T09:30:00+00:00"),
            ("2026-11-25T08:00:00+00:00", "2026-11-25T08:10:00+00:00"),
            (None, None),  # never started: nothing exported
        ]
    ):
        db.execute(
            f"INSERT INTO visits ({columns}, started_at, submitted_at, status) "
            "VALUES (?, '2026-11-25T10:00:00+00:00', ?, ?, '2026-11-26T00:00:00+00:00', "
            "'2026-11-25T07:00:00+00:00', ?, ?, ?)",
            (f"R-{n}", f"t{n}", f"c{n}", started, submitted, "submitted" if started else "invited"),
        )
    [new] = [m for m in storage.migrations._migrations if m.name.startswith("m100")]
    new.fn(db)
    rows = list(db.execute("SELECT id, uuid, change_seq, changed_us FROM visits ORDER BY id"))
    assert len({row[1] for row in rows}) == 3 and all(len(row[1]) == 36 for row in rows)
    assert [row[2] for row in rows] == [2, 1, 0]  # the 08:10 change first
    assert rows[1][3] < rows[0][3]
    db.execute(
        "UPDATE visits SET status = 'reviewed', reviewed_at = '2026-11-25T08:00:00+00:00' "
        "WHERE id = 2"
    )
    seq, changed = db.execute("SELECT change_seq, changed_us FROM visits WHERE id = 2").fetchone()
    assert seq == 3 and changed > rows[0][3]  # later than every change before, never back
    db.execute(
        "INSERT INTO visits (patient_ref, appointment_at, token_hash, code_hash, expires_at, "
        "created_at) VALUES ('N', '2026-11-25', 'tn', 'cn', '2026-11-26', '2026-11-25')"
    )
    [(made,)] = db.execute("SELECT uuid FROM visits WHERE patient_ref = 'N'").fetchall()
    assert len(made) == 36 and made[14] == "4"  # a version 4 UUID, even without the app
    db.conn.close()


def test_m104_keeps_a_visit_on_its_way_at_its_place_and_its_drafts(tmp_path):
    """The standard measures came in as steps 8 and 9 before the safety question (issue
    25): a visit on the safety step (8) or the review (9) keeps its place (10, 11), with
    its draft of the safety step; earlier steps stay as they were."""
    from sqlite_utils import Database

    from patientapp.questionnaire import model as questionnaire

    path = tmp_path / "old.db"
    db = Database(sqlite3.connect(path))
    for migration in storage.migrations._migrations:
        if migration.name < "m104":
            migration.fn(db)
    columns = "patient_ref, appointment_at, token_hash, code_hash, expires_at, created_at"
    for n, (current, furthest, status) in enumerate(
        [(3, 5, "in_progress"), (8, 8, "in_progress"), (9, 9, "in_progress"), (9, 9, "submitted")]
    ):
        db.execute(
            f"INSERT INTO visits ({columns}, current_step, furthest_step, status, started_at) "
            "VALUES (?, '2026-11-25T10:00:00+00:00', ?, ?, '2026-11-26T00:00:00+00:00', "
            "'2026-11-25T07:00:00+00:00', ?, ?, ?, '2026-11-25T09:00:00+00:00')",
            (f"R-{n}", f"t{n}", f"c{n}", current, furthest, status),
        )
    before = dict(db.execute("SELECT id, change_seq FROM visits").fetchall())
    db.execute(
        "INSERT INTO drafts (visit_id, step, generation, fields, saved_at) VALUES "
        "(2, 8, 0, '{}', '2026-11-25T09:05:00+00:00'), (1, 3, 0, '{}', '2026-11-25T09:05:00+00:00')"
    )
    [m104] = [m for m in storage.migrations._migrations if m.name.startswith("m104")]
    m104.fn(db)
    steps = list(db.execute("SELECT current_step, furthest_step FROM visits ORDER BY id"))
    assert steps == [(3, 5), (10, 10), (11, 11), (11, 11)]
    # A visit on its way changed (its progress is exported); a sent one did not: no
    # integration reads the whole history again for a renumbering.
    after = dict(db.execute("SELECT id, change_seq FROM visits").fetchall())
    assert after[1] == before[1] and after[2] > before[2] and after[3] > before[3]
    assert after[4] == before[4]
    triggers = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    assert "visits_changed" in triggers  # put back as it was
    assert sorted(db.execute("SELECT visit_id, step FROM drafts")) == [(1, 3), (2, 10)]
    q = questionnaire.default()
    assert [s.id for s in q.sections].index("safety") + 1 == 10  # the step it moved to
    assert storage.SECTIONS_BEFORE_SAFETY_2026_3 == 7
    measures = db.execute("SELECT measures, measures_offered FROM visits").fetchall()
    assert measures == [("", None)] * 4  # nothing included, nothing offered
    db.conn.close()

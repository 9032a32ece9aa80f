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

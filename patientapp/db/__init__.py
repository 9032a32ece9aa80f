"""The database: connection, migrations, named SQL."""

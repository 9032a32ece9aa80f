"""The WSGI entry point: `flask --app app ...` and waitress both load `app` from here."""

from patientapp import create_app
from patientapp.db.storage import StorageError

try:
    app = create_app()
except StorageError as refusal:
    raise SystemExit(f"patientapp cannot start: {refusal}") from None

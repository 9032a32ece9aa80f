"""The WSGI entry point: `flask --app app ...` and waitress both load `app` from here."""

from patientapp import create_app

app = create_app()

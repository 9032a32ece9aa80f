"""The read-only FHIR API."""

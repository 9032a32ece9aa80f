"""A visit's answers for other systems: CSV and FHIR R4."""

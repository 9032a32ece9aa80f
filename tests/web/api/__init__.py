"""The FHIR API and the other ways out."""

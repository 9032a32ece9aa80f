"""The patient blueprint."""

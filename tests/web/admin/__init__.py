"""The admin blueprint."""

"""The questionnaire: its definition as data, item types, display."""

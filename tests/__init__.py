"""The test suite, laid out like patientapp/ (see README, How it works)."""

"""Tests that need no request: the questionnaire, summary rules, navigation, throttle,
records, storage, exports, layering."""

"""The one-page summary: pure rules, the laid-out view, the text for the record."""

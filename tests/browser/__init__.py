"""Browser tests: the real production server driven by Chromium at phone size.

A package like every folder under tests/, so this folder's conftest.py is imported as
``tests.browser.conftest`` and never shadows ``tests/conftest.py``.
"""

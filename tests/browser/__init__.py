"""Browser tests: the real production server driven by Chromium at phone size.

A package (not a loose folder) so that this folder's conftest.py is imported as
``browser.conftest`` and never shadows ``tests/conftest.py``, which other test modules
import by the plain name ``conftest``.
"""

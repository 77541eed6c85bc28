"""The browser tests' shared fixtures: one headless Chromium per test module, and a page of the
module's ``site`` fixture (its base URL) that fails the test on any page error or failed
request it saw (tests/web/test_ui_browser.py: Watched)."""
from __future__ import annotations

import pytest

from tests.web.test_ui_browser import Watched, start_browser


@pytest.fixture(scope="module")
def browser():
    pw, b = start_browser()
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser, site):
    w = Watched(browser, site)
    w.page.goto(site + "/")
    yield w.page
    errors = list(w.errors)
    w.close()
    assert errors == []

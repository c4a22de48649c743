"""Shared pytest fixtures."""

import pytest


@pytest.fixture(scope="session")
def chromium_browser():
    """Headless system Chromium (Playwright) for `@pytest.mark.browser` tests.

    Skips when Playwright or Chromium is missing; fails instead when `CI` is set.
    """
    from browser_support import launch_chromium, skip_or_fail

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()

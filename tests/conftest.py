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


@pytest.fixture(scope="session")
def solara_cache():
    """The Solara CDN proxy cache, filled from the npm registry if needed."""
    from browser_support import skip_or_fail

    try:
        from market_abm.visualization.assets import AssetFetchError, fetch_assets, frontend_problems
    except ImportError as e:
        pytest.fail(f"cannot import market_abm.visualization.assets: {e}")
    problems = frontend_problems()
    if problems:
        pytest.fail("; ".join(problems))
    try:
        return fetch_assets(progress=False)
    except AssetFetchError as e:
        skip_or_fail(f"could not fill the Solara asset cache (run `market-abm viz --fetch-assets`): {e}")

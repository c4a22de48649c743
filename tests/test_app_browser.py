"""End-to-end: the visualizer served as `market-abm viz` serves it (`solara run market_abm.visualization.app`),
driven in headless Chromium.

Debian's chromium is driven by Playwright (`executable_path`); the page's front end comes from the
filled Solara asset cache (`market-abm viz --fetch-assets`) and every non-loopback request is
blocked. Locally the tests skip when Chromium is missing; under CI they fail instead.
"""

import os
import re
import time
from pathlib import Path

import pytest
from browser_support import SolaraServer, loopback_only

from market_abm.visualization import APP

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "app.png"
SEED = "Seed (a whole number >= 0)"
AGENTS = "Number of agents (1 to 2000)"


@pytest.fixture(scope="module")
def server(tmp_path_factory, solara_cache):
    """The app, served offline from the filled asset cache, for the whole module."""
    cache = solara_cache
    log = tmp_path_factory.mktemp("solara") / "solara.log"
    with SolaraServer(APP, log, cache_dir=cache, cwd=ROOT, production=True) as running:  # no reloader
        yield running
    misses = re.findall(r"Could not load URL: '([^']+)'", running.log())
    assert not misses, f"front-end assets missing from the cache {cache}: {misses}"


@pytest.fixture
def open_page(chromium_browser, server):
    """Open the app in a fresh browser context (a new session); only loopback requests are allowed."""
    contexts, external = [], []

    def opened(width=1280, height=900):
        context = chromium_browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        context.route("**/*", loopback_only(external))
        page = context.new_page()
        page.goto(server.url)
        try:
            page.get_by_role("button", name="Step", exact=True).wait_for(timeout=60_000)
            time_shown(page, 0)
            plots(page).nth(4).wait_for(timeout=30_000)
        except Exception:
            pytest.fail(f"the page did not render; server log:\n{server.log_tail()}")
        return page

    yield opened
    for context in contexts:
        context.close()
    assert not external, f"the page tried to reach the network: {external}"


def plots(page):
    """The network view and the four time plots (matplotlib images), in page order."""
    return page.locator("img.widget-image")


def time_shown(page, steps, timeout=30_000):
    page.get_by_text(re.compile(rf"^\s*Time: {steps}(\.0)?\s*$")).wait_for(timeout=timeout)


def time_now(page):
    """The model time the page shows."""
    text = page.get_by_text(re.compile(r"^\s*Time: \d+(\.0)?\s*$")).inner_text()
    return int(float(text.split(":")[1]))


def press_step(page, times=1, start=0):
    step = page.get_by_role("button", name="Step", exact=True)
    for k in range(1, times + 1):
        step.click()
        time_shown(page, start + k)


def type_control(page, label, text):
    field = page.get_by_label(label)
    field.fill(text)
    field.press("Enter")


def settled_images(page, n=5, timeout=30.0):
    """Screenshots of the page's images once two consecutive rounds agree (redraws have landed)."""
    from playwright.sync_api import Error as PlaywrightError

    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            shots = [plots(page).nth(i).screenshot(timeout=5_000) for i in range(n)]
        except PlaywrightError:  # an image was replaced by a redraw while being captured
            page.wait_for_timeout(300)
            continue
        if shots == last:
            return shots
        last = shots
        page.wait_for_timeout(300)
    return last


def test_step_five_times_changes_every_plot(open_page, tmp_path):
    page = open_page()
    page.get_by_text("Phase 1: estimating transfers").wait_for()
    before = settled_images(page)
    press_step(page, 5)
    after = settled_images(page)
    page.screenshot(path=tmp_path / "after_five_steps.png", full_page=True)
    changed = [a != b for a, b in zip(after, before)]
    assert changed == [True] * 5, f"after five steps, [network, welfare, regret, transfers, target] changed: {changed}"


def test_bad_control_shows_a_message_and_the_server_keeps_serving(open_page, server):
    page = open_page()
    type_control(page, SEED, "abc")
    page.get_by_role("button", name="Reset", exact=True).click()
    page.get_by_text("seed: must be a whole number, got 'abc'").first.wait_for(timeout=30_000)
    type_control(page, SEED, "42")
    type_control(page, AGENTS, "0")
    page.get_by_role("button", name="Reset", exact=True).click()
    page.get_by_text("n_agents: must be in [1, 2000], got 0").first.wait_for(timeout=30_000)

    again = open_page()  # the next request: a new session on the same server
    press_step(again, 1)
    type_control(page, AGENTS, "20")  # and the first page recovers with good values
    page.get_by_role("button", name="Reset", exact=True).click()
    page.get_by_text("20 agents on watts_strogatz").wait_for(timeout=30_000)
    press_step(page, 1)
    assert page.get_by_text("Cannot build the model").count() == 0
    assert "Traceback" not in server.log(), server.log_tail()


@pytest.mark.slow
def test_readme_screenshot(open_page, tmp_path):
    """The default model stepped into Phase 2, as a screenshot; with `UPDATE_SCREENSHOT=1` it replaces
    docs/app.png (`UPDATE_SCREENSHOT=1 pytest -m slow -k readme_screenshot`). A test run leaves the
    checkout as it was: run files record whether it has local changes."""
    page = open_page(1400, 1500)
    interval = page.get_by_role("slider").nth(1)  # Render Interval: steps per press of Step
    interval.focus()
    interval.press("End")
    presses_after_phase2 = 6
    while presses_after_phase2 and time_now(page) < 5000:
        start = time_now(page)
        page.get_by_role("button", name="Step", exact=True).click()
        while time_now(page) == start:
            page.wait_for_timeout(200)
        if page.get_by_text("Phase 2: steering").count():
            presses_after_phase2 -= 1
    settled_images(page)
    shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "app.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 50_000

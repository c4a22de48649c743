"""End-to-end: a Mesa SolaraViz page renders and steps offline, in headless Chromium.

Serves Mesa's Boltzmann wealth example (as shipped, with altair, and redrawn with the
matplotlib backend) from the filled Solara CDN cache, with the upstream CDN pointed at a
closed loopback port and every non-loopback browser request blocked.
"""

import re
import time
from importlib import util
from pathlib import Path

import pytest
from browser_support import SolaraServer, loopback_only

pytestmark = pytest.mark.browser

MATPLOTLIB_APP = '''\
"""Mesa's Boltzmann wealth example page, drawn with the matplotlib backend."""

from mesa.examples.basic.boltzmann_wealth_model.model import BoltzmannScenario, BoltzmannWealth
from mesa.visualization import SolaraViz, SpaceRenderer, make_plot_component
from mesa.visualization.components import AgentPortrayalStyle


def agent_portrayal(agent):
    return AgentPortrayalStyle(color=agent.wealth)


model = BoltzmannWealth(scenario=BoltzmannScenario(n=50, width=10, height=10))
renderer = SpaceRenderer(model, backend="matplotlib").setup_agents(agent_portrayal, cmap="viridis", vmin=0, vmax=10)
renderer.render()
page = SolaraViz(model, renderer, components=[make_plot_component("Gini")], name="Boltzmann Wealth Model")
'''


def _mesa_example_app() -> Path:
    spec = util.find_spec("mesa")
    return Path(spec.origin).parent / "examples" / "basic" / "boltzmann_wealth_model" / "app.py"


@pytest.fixture(params=["matplotlib", "altair"])
def app_path(request, tmp_path):
    """Mesa's example as shipped (altair), or redrawn with matplotlib."""
    if util.find_spec("altair") is None:
        pytest.fail("mesa.visualization imports altair, which is not installed")
    if request.param == "altair":
        return _mesa_example_app()
    path = tmp_path / "boltzmann_matplotlib.py"
    path.write_text(MATPLOTLIB_APP)
    return path


def test_mesa_example_renders_offline(chromium_browser, solara_cache, app_path, tmp_path):
    external = []  # requests that would have left the machine

    log_path = tmp_path / "solara.log"
    with SolaraServer(app_path, log_path, cache_dir=solara_cache, cwd=tmp_path) as server:
        context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
        page_errors = []
        try:
            context.route("**/*", loopback_only(external))
            page = context.new_page()
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.goto(server.url)

            step = page.get_by_role("button", name="Step", exact=True)
            try:
                step.wait_for(state="visible", timeout=40_000)
            except Exception:
                page.screenshot(path=tmp_path / "empty_shell.png")
                pytest.fail(
                    f"page did not render (screenshot in {tmp_path}); "
                    f"page errors: {page_errors[:3]}; server log:\n{server.log_tail()}"
                )
            page.get_by_text(re.compile(r"^\s*Time: 0(\.0)?\s*$")).wait_for(timeout=20_000)
            plots = page.locator(".vega-embed, img.widget-image")  # the space drawing, then Gini
            plots.nth(1).wait_for(state="visible", timeout=20_000)
            assert all(box["width"] > 100 for box in (plots.nth(i).bounding_box() for i in (0, 1)))
            page.wait_for_timeout(500)
            page.screenshot(path=tmp_path / "step0.png", full_page=True)
            before = [plots.nth(i).screenshot() for i in (0, 1)]

            step.click()
            page.get_by_text(re.compile(r"^\s*Time: 1(\.0)?\s*$")).wait_for(timeout=20_000)
            changed = [False, False]
            deadline = time.monotonic() + 15
            while not all(changed) and time.monotonic() < deadline:
                page.wait_for_timeout(250)
                changed = [changed[i] or plots.nth(i).screenshot() != before[i] for i in (0, 1)]
            page.screenshot(path=tmp_path / "step1.png", full_page=True)
        finally:
            context.close()

    cdn_misses = re.findall(r"Could not load URL: '([^']+)'", server.log())
    assert not cdn_misses, f"assets missing from the cache {solara_cache}: {cdn_misses}"
    assert not external, f"the page tried to reach the network: {external}"
    assert changed == [True, True], f"after Step, [space, Gini plot] changed: {changed}"
    assert (tmp_path / "step1.png").stat().st_size > 10_000

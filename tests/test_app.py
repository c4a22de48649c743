"""The Solara visualizer without a browser: the page is rendered with `solara.render`, and Step, Reset
and the controls are driven through its widgets."""

import functools
import importlib

import ipyvuetify as v
import ipywidgets
import matplotlib
import networkx as nx
import numpy as np
import pytest
import solara

matplotlib.use("Agg")

from market_abm.model import MarketModel  # noqa: E402
from market_abm.registry import SCENARIOS  # noqa: E402
from market_abm.visualization import APP, network_view  # noqa: E402
from market_abm.visualization.market_view import MarketView  # noqa: E402


@pytest.fixture(scope="module")
def app():
    return importlib.import_module(APP)


class Page:
    """The rendered page, and the few things a user does with it."""

    def __init__(self, app, views):
        self.views = views  # every model the page has built, the current one last
        self.box, self.rc = solara.render(solara.AppLayout(children=[app.Page()]), handle_error=False)

    @property
    def view(self):
        return self.views[-1]

    def button(self, label):
        return self.rc.find(v.Btn, children=[label]).widget

    def type_into(self, label, text):
        field = self.rc.find(v.TextField, label=label).widget
        field.v_model = text
        field.fire_event("keyup.enter", {})

    def choose(self, label, value):
        self.rc.find(v.Select, label=label).widget.v_model = value

    def images(self):
        return [item.value for item in _grid(self.box).items if isinstance(item, ipywidgets.Image)]

    def text(self):
        """Every text and template string in the page."""
        return "\n".join(_texts(self.box, set()))


def _grid(widget, seen=None):
    seen = set() if seen is None else seen
    if id(widget) in seen:
        return None
    seen.add(id(widget))
    if type(widget).__name__ == "GridLayout":
        return widget
    for child in list(getattr(widget, "children", None) or []) + list(getattr(widget, "items", None) or []):
        if isinstance(child, ipywidgets.Widget):
            found = _grid(child, seen)
            if found is not None:
                return found
    return None


def _texts(widget, seen):
    if id(widget) in seen:
        return
    seen.add(id(widget))
    for attr in ("template", "value", "label", "description"):
        value = getattr(widget, attr, None)
        if isinstance(value, str):
            yield value
        elif hasattr(value, "template"):  # a Vue template widget
            yield value.template
    for child in list(getattr(widget, "children", None) or []) + list(getattr(widget, "items", None) or []):
        if isinstance(child, str):
            yield child
        elif isinstance(child, ipywidgets.Widget):
            yield from _texts(child, seen)


@pytest.fixture
def page(app, monkeypatch):
    """The rendered page; every `MarketView` it builds is recorded in `page.views`."""
    views = []
    original = MarketView.__init__

    @functools.wraps(original)  # Mesa reads the controls from the signature
    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        views.append(self)

    monkeypatch.setattr(MarketView, "__init__", record)
    rendered = Page(app, views)
    yield rendered
    rendered.rc.close()  # Mesa's redraw counter is global: a page left open would redraw on every step


SEED = "Seed (a whole number >= 0)"
AGENTS = "Number of agents (1 to 2000)"


def test_page_shows_the_network_four_plots_and_the_summary(page):
    assert page.view.error is None and page.view.market.env.n_agents == 50
    assert len(page.images()) == 5  # the network view and four time plots
    text = page.text()
    for figure in ("Gap closed", "Phase 1: estimating transfers", "Total transfers paid"):
        assert figure in text


def test_step_advances_the_model_and_redraws_the_plots(page):
    before = page.images()
    for _ in range(5):
        page.button("Step").click()
    market = page.view.market
    assert market.steps == 5 and len(market.steps_frame()) == 5
    after = page.images()
    assert all(a != b for a, b in zip(after, before)), "every view changes after five steps"
    assert "Time: 5" in page.text()


def test_reset_builds_a_fresh_model_from_the_controls(page):
    page.button("Step").click()
    first = page.view
    page.type_into(AGENTS, " 12 ")
    page.choose("Mechanism", "none")
    page.choose("Graph", "ring")
    page.type_into(SEED, "7")
    page.button("Reset").click()
    market = page.view.market
    assert page.view is not first and market.steps == 0
    assert market.env.n_agents == 12 and market.settings["mechanism"] == "none"
    assert market.settings["graph"] == "ring"
    assert market.settings == MarketModel(n_agents=12, graph="ring", mechanism="none", rng=7).settings
    assert market.settings["scheme"] is None  # the scheme control means nothing to a fixed rule
    assert "fixed rule" in page.text()
    page.button("Step").click()
    assert market.steps == 1


def test_a_bad_control_shows_a_message_and_the_next_reset_recovers(page):
    for label, text, message in [(SEED, "abc", "seed: must be a whole number, got 'abc'"),
                                 (AGENTS, "0", "n_agents: must be in [1, 2000], got 0")]:
        page.type_into(label, text)
        page.button("Reset").click()
        assert page.view.market is None and page.view.error == message
        alerts = page.rc.find(v.Alert).widgets
        assert any(message in str(alert.children) for alert in alerts), "the message is shown on the page"
        page.button("Step").click()  # nothing to step: the message stays
        assert message in page.text()
        page.type_into(label, "20")
    page.button("Reset").click()
    assert page.view.error is None and page.view.market.env.n_agents == 20
    page.button("Step").click()
    assert page.view.market.steps == 1
    assert not page.rc.find(v.Alert).widgets


def test_every_registered_scenario_is_offered_and_builds(app):
    controls = app.model_params
    assert controls["scenario_name"]["values"] == sorted(SCENARIOS)
    for name in ("graph", "mechanism", "scheme", "learner"):
        assert controls[name]["value"] in controls[name]["values"]
    for scenario in SCENARIOS:
        view = MarketView(scenario_name=scenario, n_agents="8")
        assert view.error is None, view.error
        renderer = network_view.NetworkRenderer(view)
        view.step()
        renderer.draw_structure()
        renderer.draw_agents()
        assert view.market.settings["scenario"] == scenario


@pytest.mark.parametrize(("controls", "message"), [
    ({"seed": "abc"}, "seed: must be a whole number, got 'abc'"),
    ({"seed": "1.5"}, "seed: must be a whole number, got '1.5'"),
    ({"seed": "-3"}, "seed: must be >= 0, got -3"),
    ({"n_agents": "0"}, "n_agents: must be in [1, 2000], got 0"),
    ({"n_agents": "ten"}, "n_agents: must be a whole number, got 'ten'"),
    ({"n_agents": "5000"}, "n_agents: must be in [1, 2000], got 5000"),
    ({"scenario_name": "nowhere"}, "scenario: must be one of"),
    ({"mechanism": "oracle"}, "mechanism: 'oracle' needs an exact local model"),
])
def test_bad_controls_are_one_line_messages_not_exceptions(controls, message):
    view = MarketView(**controls)
    assert view.market is None and view.error.startswith(message) and "\n" not in view.error
    view.step()  # a page with no model still steps (nothing happens)
    renderer = network_view.NetworkRenderer(view)
    assert message in renderer.draw_structure().get_title()


def test_seed_text_is_converted_and_the_same_seed_gives_the_same_run():
    runs = []
    for seed in (" 11 ", "11", 11):
        view = MarketView(n_agents="6", seed=seed)
        assert view.error is None
        for _ in range(8):
            view.step()
        runs.append(view.market.steps_frame())
    assert runs[0].equals(runs[1]) and runs[1].equals(runs[2])
    reference = MarketModel(n_agents=6, scheme="stationary", rng=11)
    reference.run_steps(8)
    assert reference.steps_frame().equals(runs[0])


def test_layout_is_computed_once_per_graph(monkeypatch):
    calls = []
    spring = nx.spring_layout
    monkeypatch.setattr(nx, "spring_layout", lambda graph, **kw: calls.append(1) or spring(graph, **kw))
    network_view._layout.cache_clear()
    view = MarketView(n_agents="30")
    renderer = network_view.NetworkRenderer(view)
    for _ in range(4):
        view.step()
        renderer.draw_structure()
        renderer.draw_agents()
    again = network_view.NetworkRenderer(MarketView(n_agents="30"))  # Reset with the same graph
    assert again.draws_network and len(calls) == 1


def test_large_populations_are_drawn_in_aggregate(monkeypatch):
    monkeypatch.setattr(network_view, "LAYOUT_LIMIT", 20)
    monkeypatch.setattr(nx, "spring_layout", lambda *a, **k: pytest.fail("no layout above the limit"))
    view = MarketView(n_agents="25")
    renderer = network_view.NetworkRenderer(view)
    view.step()
    for artist in list(renderer.canvas.patches):  # the page clears the canvas before each redraw
        artist.remove()
    ax = renderer.draw_structure()
    assert not renderer.draws_network
    assert sum(p.get_height() for p in ax.patches) == 25  # every agent in one bar segment
    assert "25 agents" in ax.get_title()


def test_portrayal_encodes_state_action_and_transfer():
    view = MarketView(n_agents="10", mechanism="subsidy")
    view.step()
    market = view.market
    styles = [network_view.agent_portrayal(agent) for agent in market.learning_agents]
    assert [s.color for s in styles] == list(market.states)
    paid = market.transfers > 0
    assert paid.any()
    assert all((s.edgecolors == network_view.SUBSIDY) == p for s, p in zip(styles, paid))
    assert all((s.size > network_view.node_size(10)) == p for s, p in zip(styles, paid))
    markers = {a: network_view.ACTION_MARKERS[a] for a in market.actions}
    assert [s.marker for s in styles] == [markers[a] for a in market.actions]


def test_phases_are_marked_on_the_time_axis(app):
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    app.mark_phases(ax, [1, 1, 1, 2, 2])
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["Phase 1", "Phase 2"]
    spans = [p.get_x() for p in ax.patches]
    assert spans == [-0.5, 2.5]


def test_target_share_reporter():
    laissez_faire = MarketModel(n_agents=20, mechanism="none", rng=3)
    laissez_faire.run_steps(12)
    frame = laissez_faire.steps_frame()
    assert np.allclose(frame["share_target"], frame["share_abate"])  # abating is the desirable action
    steered = MarketModel(n_agents=1, mechanism="two_phase", scheme="per_action", rng=3)
    while steered.phase != 2:
        steered.step()
    targets = steered.target_actions()
    planned = steered.mechanism.targets()
    has_target = planned >= 0
    assert np.array_equal(targets[has_target], planned[has_target])
    assert (targets[~has_target] == steered.env.subsidised_action).all()

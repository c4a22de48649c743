"""The model the page drives: a `MarketModel` built from the page's controls.

Controls arrive as the page holds them (the seed and the number of agents as typed text). A bad
value does not raise: the view keeps the one-line reason in `error`, the page shows it, and the
next Reset with good values builds a model again.
"""

from __future__ import annotations

import mesa

from market_abm.core.validation import check_choice, check_int
from market_abm.model import MarketModel
from market_abm.registry import SCENARIOS, takes_scheme

MAX_AGENTS = 2000  # the welfare benchmark is simulated at set-up: ~6 s for 1000 agents
SCENARIO_DEFAULT = "scenario default"  # the learner control's choice of the scenario's own learner


def read_int(name, text, low, high=None):
    """An integer typed into a text box (surrounding spaces allowed), within `[low, high]`."""
    if isinstance(text, str):
        try:
            text = int(text.strip())
        except ValueError:
            raise ValueError(f"{name}: must be a whole number, got {text!r}") from None
    return check_int(name, text, low=low, high=high)


class MarketView(mesa.Model):
    """One page session's model, or the reason there is none.

    Attributes:
        market: the `MarketModel` built from the controls (None when a control is bad).
        error: the one-line reason the controls could not build a model (None when they could).
        controls: the control values as received.
    """

    def __init__(self, scenario_name="pollution", n_agents="50", graph="watts_strogatz",
                 mechanism="two_phase", scheme="stationary", learner=SCENARIO_DEFAULT, seed="42"):
        super().__init__(rng=0)
        self.controls = {"scenario_name": scenario_name, "n_agents": n_agents, "graph": graph,
                         "mechanism": mechanism, "scheme": scheme, "learner": learner, "seed": seed}
        self.market, self.error = None, None
        try:
            self.market = MarketModel(**self.settings(**self.controls))
        except ValueError as err:
            self.error = str(err)
            self.running = False  # nothing to step: the page disables Step and Play

    @staticmethod
    def settings(scenario_name, n_agents, graph, mechanism, scheme, learner, seed):
        """`MarketModel` keyword arguments from the controls; a bad one is a `ValueError` naming it."""
        return {
            "scenario": check_choice("scenario", scenario_name, SCENARIOS),
            "n_agents": read_int("n_agents", n_agents, low=1, high=MAX_AGENTS),
            "graph": graph, "mechanism": mechanism, "scheme": scheme if takes_scheme(mechanism) else None,
            "learner": None if learner == SCENARIO_DEFAULT else learner,
            "rng": read_int("seed", seed, low=0),
        }

    def step(self):
        """Advance the market by one time step, or a continuing market by one review period (its data
        are collected per review period)."""
        if self.market is None:
            return
        if self.market.continuing:
            self.market.run_episodes(1)
        else:
            self.market.step()

    @property
    def grid(self):
        """The market's network (None without a model, or above Mesa's space limit)."""
        return None if self.market is None else self.market.grid

    @property
    def datacollector(self):
        return None if self.market is None else self.market.datacollector

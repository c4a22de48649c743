"""The summary's figures on hand-made episode frames and estimates."""

import numpy as np
import pandas as pd
import pytest

from market_abm.core.institution import CellEstimates
from market_abm.registry import make_scheme
from market_abm.environments.economies import costly_compliance
from market_abm.metrics import estimate_errors, estimate_figures, gap_closed, regret_decay, regret_slope, summarise

BENCHMARKS = {"optimal_welfare": 1.0, "laissez_faire_welfare": 0.0}


def frame(welfare, agent_regret=None):
    welfare = np.asarray(welfare, float)
    out = pd.DataFrame({"welfare": welfare, "expected_welfare": welfare, "transfers": 0.5,
                        "cumulative_regret": np.cumsum(1.0 - welfare)})
    if agent_regret is not None:
        out["agent_regret"] = agent_regret
    return out


def test_gap_closed_is_the_share_of_the_distance_from_laissez_faire_to_the_optimum():
    assert gap_closed(0.75, 1.0, 0.0) == 0.75
    assert gap_closed(-0.5, 1.0, 0.0) == -0.5  # worse than laissez-faire
    assert gap_closed(2.0, 3.0, 1.0) == 0.5
    assert np.isnan(gap_closed(0.3, 1.0, 1.0))  # no gap to close


def test_gap_closed_is_measured_on_the_last_tenth_of_episodes():
    summary = summarise(frame([0.0] * 90 + [0.8] * 10), BENCHMARKS)
    assert summary["gap_closed"] == pytest.approx(0.8) and summary["final_welfare"] == pytest.approx(0.8)


def test_regret_slope_is_one_for_linear_regret_and_half_for_square_root_regret():
    k = np.arange(1, 10_001)
    assert regret_slope(0.3 * k) == pytest.approx(1.0)
    assert regret_slope(np.sqrt(k)) == pytest.approx(0.5, abs=1e-6)
    assert regret_slope(np.log(k + 1)) < 0.2
    assert np.isnan(regret_slope([0.0, 0.0, 0.0]))  # no regret at all: no slope


def test_regret_decay_compares_the_last_tenth_with_the_second():
    per_episode = np.concatenate([np.full(100, 5.0), np.full(100, 2.0), np.full(700, 1.0), np.full(100, 0.5)])
    figures = regret_decay(per_episode)
    assert figures["regret_tail"] == pytest.approx(0.5) and figures["regret_decay"] == pytest.approx(0.25)
    assert np.isnan(regret_decay(np.zeros(50))["regret_decay"])  # nothing to decay from
    summary = summarise(frame(1.0 - per_episode), BENCHMARKS)
    assert summary["regret_tail"] == pytest.approx(0.5) and summary["regret_decay"] == pytest.approx(0.25)
    assert summary["total_welfare_regret"] == pytest.approx(per_episode.sum())


def test_agent_regret_is_summed_where_it_is_exact():
    summary = summarise(frame(np.ones(100), agent_regret=np.full(100, 0.1)), BENCHMARKS)
    assert summary["agent_regret"] == pytest.approx(10.0) and summary["agent_regret_slope"] == pytest.approx(1.0)
    assert "agent_regret" not in summarise(frame(np.ones(100)), BENCHMARKS)


def test_estimate_figures_cover_every_searched_cell_and_count_what_they_leave_out():
    mdp = costly_compliance(3.0, horizon=2, n_states=1)  # Delta = 3 on (h, 0, comply), 0 on shirking
    scheme = make_scheme("fine", mdp.horizon, mdp.n_states, mdp.n_actions)  # cells (h, a): 0, 1, 2, 3
    nan, inf = np.nan, np.inf
    estimates = CellEstimates(
        scheme=scheme, accept_share=0.6,
        searched=np.array([[False, True, False, True]]),
        phase1=np.array([[nan, 3.25, nan, nan]]),  # cell 3 searched but not priced when Phase 1 ended
        current=np.array([[nan, 2.9, nan, inf]]),
        steered=np.array([[False, True, False, False]]),
        at_ceiling=np.array([[False, False, False, True]]))
    errors = estimate_errors(estimates, mdp)
    assert errors["phase1"][0, 1] == pytest.approx(0.25) and np.isnan(errors["phase1"][0, 3])
    assert errors["final"][0, 1] == pytest.approx(0.1) and np.isnan(errors["final"][0, 0])
    figures = estimate_figures(estimates, mdp)
    assert figures == {"phase1_cells_searched": 2, "phase1_cells_unpriced": 1, "cells_steered": 1,
                       "cells_at_ceiling": 1, "phase1_max_abs_error": pytest.approx(0.25),
                       "final_max_abs_error": pytest.approx(0.1)}
    assert set(estimate_figures(estimates)) == {"phase1_cells_searched", "phase1_cells_unpriced", "cells_steered",
                                                "cells_at_ceiling"}  # no exact model: no errors

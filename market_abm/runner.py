"""One run from its settings: what `market-abm run` simulates, what its `summary.json` records so
that the run can be repeated, and what `market-abm replay DIR` re-runs.

A run's settings are plain data: the `MarketModel` keywords (scenario, n_agents, graph, mechanism,
scheme, learner, the four parameter tables, agent_snapshot_every) and its length in `episodes` or
`steps`. A continuing market (pricing) given neither runs until its learners converge (at most the
scenario's `max_periods`), and its laissez-faire benchmark is measured by a twin run without offers.
"""

from __future__ import annotations

from market_abm.core.validation import check_seed
from market_abm.results import RUN_FORMAT, model_tables

PAPER_EPISODES = 10_000  # default episodes with one agent (the paper setting)
NETWORK_EPISODES = 1000  # default episodes with many agents
LENGTHS = ("episodes", "steps")
MODEL_SETTINGS = ("scenario", "n_agents", "graph", "mechanism", "scheme", "learner", "graph_params",
                  "scenario_params", "learner_params", "mechanism_params", "agent_snapshot_every") + LENGTHS


def simulate(settings, seed, progress=False):
    """Run what `settings` describe with `seed`. Returns the run's tables (`{file name: frame}`) and its
    summary, which records the seed, the settings (the default length filled in) and the code's version."""
    from market_abm.batch.runs import provenance

    settings, seed = check_settings(settings), check_seed("seed", seed)
    tables, summary = simulate_model(settings, seed, progress)
    summary.update({"format": RUN_FORMAT, "seed": seed, "settings": settings, "written_by": provenance()})
    return tables, summary


def check_settings(settings):
    """A copy of `settings`, which must name a scenario and hold only the settings of its kind of run."""
    if not isinstance(settings, dict) or not isinstance(settings.get("scenario"), str):
        raise ValueError(f"settings: must be a table naming the scenario, got {settings!r}")
    unknown = sorted(set(settings) - set(MODEL_SETTINGS))
    if unknown:
        raise ValueError(f"settings: unknown setting {unknown[0]!r}; a {settings['scenario']} run has "
                         f"{', '.join(MODEL_SETTINGS)}")
    return dict(settings)


def simulate_model(settings, seed, progress):
    """A `MarketModel` run; with neither `episodes` nor `steps` set, the paper's or the network default,
    or, in a continuing market, until its learners converge."""
    from market_abm.model import MarketModel

    model = MarketModel(**{k: v for k, v in settings.items() if k not in LENGTHS}, rng=seed)
    settings["scheme"] = model.settings["scheme"]  # the scheme the mechanism posts through, if it takes one
    if settings.get("steps") is not None:
        model.run_steps(settings["steps"], progress=progress)
    elif model.continuing and settings.get("episodes") is None:
        model.run_to_convergence(progress=progress)
    else:
        if settings.get("episodes") is None:
            settings["episodes"] = PAPER_EPISODES if model.env.n_agents == 1 else NETWORK_EPISODES
        model.run_episodes(settings["episodes"], progress=progress)
    if model.continuing:
        model.measure_laissez_faire(progress=progress)
    return model_tables(model), model.summary()

"""Is the learner what it claims? Each built-in learner left alone (no mechanism) on a family of
random tabular MDPs, against its own optimum.

The family: 20 MDPs with `S` in 3-8 states, `A` in 2-4 actions, horizon `H` in 4-10, Dirichlet
transitions of concentration 0.1, 0.5 or 1.0 in turn, private rewards uniform in [0, 1]
(`environments.economies.random_economy`), plus `trap`: two states, the second reachable only
through one action, whose better action there is found only by trying it.

Figures per MDP and learner, after `--episodes` episodes (3,000 by default) of one agent:
- `greedy_value`: the normalised agent value `(V^greedy - V^uniform) / (V* - V^uniform)` of the
  policy the learner would play with its exploration switched off (1 is the agent's optimum);
- `played_value`: the same for the policy it actually plays now, exploration included;
- `agent_regret`: `sum_k (V*_A - V^{pi_k}_A)` over the episodes, and `agent_regret_slope`, the
  log-log slope of that cumulative regret over the second half of the run (1 is linear regret).

Writes `learner_soundness.csv`, `learner_soundness.md` (one row per learner: the worst MDP of each
figure) and `learner_soundness_runs.csv` (one row per MDP and learner) and `learner_soundness.png`
to `--out`.

    python benchmarks/learner_soundness.py --out results/learner_soundness [--learners contract_aware ...]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from market_abm import MarketModel
from market_abm.core import TabularMDP
from market_abm.environments.economies import random_economy
from market_abm.io import write_table

LEARNERS = ("contract_aware", "epsilon_greedy", "optimistic_q", "boltzmann")
FAMILY_SIZE = 20


def family_member(i):
    """The `i`-th MDP of the family: sizes and concentration drawn from `i`."""
    rng = np.random.default_rng(1000 + i)
    n_states, n_actions, horizon = int(rng.integers(3, 9)), int(rng.integers(2, 5)), int(rng.integers(4, 11))
    return random_economy(2000 + i, n_states, n_actions, horizon, concentration=(0.1, 0.5, 1.0)[i % 3])


def trap():
    """State 0 pays 0.2 for staying and 0 for moving to state 1, which is absorbing and pays 0.3 for
    one action and 0.5 for the other: the optimum (1.0 over three steps) needs both tried."""
    transition = np.zeros((2, 2, 2))
    transition[0, 0, 0] = transition[0, 1, 1] = 1.0
    transition[1, :, 1] = 1.0
    private = np.array([[0.2, 0.0], [0.3, 0.5]])
    return TabularMDP(transition, private, np.zeros((2, 2)), 3, np.array([1.0, 0.0]))


def mdps():
    """(name, MDP) of the family and the trap."""
    return [(f"mdp {i}", family_member(i)) for i in range(FAMILY_SIZE)] + [("trap", trap())]


def normalised(mdp, policy):
    """`(V^policy - V^uniform) / (V* - V^uniform)` of the agent (1 where every policy is optimal)."""
    optimum = mdp.agent_optimum()[0]
    uniform = mdp.policy_value(np.full((mdp.horizon, mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions), "agent")
    value = mdp.policy_value(policy, "agent")
    return 1.0 if optimum - uniform < 1e-12 else float((value - uniform) / (optimum - uniform))


def run_one(name, mdp, learner, episodes):
    """One learner alone on one MDP; returns its figures."""
    start = time.perf_counter()
    model = MarketModel(mdp=mdp, n_agents=1, mechanism="none", learner=learner, rng=0)
    model.run_episodes(episodes)
    summary = model.summary()
    return {"mdp": name, "learner": learner, "states": mdp.n_states, "actions": mdp.n_actions,
            "horizon": mdp.horizon, "greedy_value": normalised(mdp, model.learner.greedy_policy()[0]),
            "played_value": normalised(mdp, model.learner.behaviour_policy()[0]),
            "agent_regret": summary["agent_regret"], "agent_regret_slope": summary["agent_regret_slope"],
            "seconds": time.perf_counter() - start}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/learner_soundness"))
    parser.add_argument("--episodes", type=int, default=3000)
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=LEARNERS)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    tasks = [(name, mdp, learner) for learner in args.learners for name, mdp in mdps()]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_one, name, mdp, learner, args.episodes) for name, mdp, learner in tasks]
        rows = [f.result() for f in tqdm(as_completed(futures), total=len(futures), desc="soundness", unit="run")]
    frame = pd.DataFrame(rows).sort_values(["learner", "mdp"], key=lambda s: s.map(
        {name: i for i, name in enumerate(args.learners)}) if s.name == "learner" else s).reset_index(drop=True)
    family = frame[frame["mdp"] != "trap"]
    table = family.groupby("learner", sort=False).agg(
        mdps=("mdp", "count"), min_greedy_value=("greedy_value", "min"), mean_greedy_value=("greedy_value", "mean"),
        min_played_value=("played_value", "min"), max_agent_regret_slope=("agent_regret_slope", "max"),
        median_agent_regret=("agent_regret", "median"))
    trapped = frame[frame["mdp"] == "trap"].set_index("learner")
    table["trap_greedy_value"] = trapped["greedy_value"]
    table["trap_agent_regret_slope"] = trapped["agent_regret_slope"]
    args.out.mkdir(parents=True, exist_ok=True)
    print(write_table(table, args.out, "learner_soundness"))
    write_table(frame.drop(columns="seconds"), args.out, "learner_soundness_runs")
    plot(frame, args.out / "learner_soundness.png")
    print(f"{len(tasks)} runs of {args.episodes} episodes in {time.perf_counter() - start:.0f} s; wrote {args.out}")


def plot(frame, path):
    """Normalised greedy value and agent-regret slope per MDP, one marker series per learner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(dict.fromkeys(frame["mdp"]))
    for learner, rows in frame.groupby("learner", sort=False):
        x = rows["mdp"].map({name: i for i, name in enumerate(names)})
        left.plot(x, rows["greedy_value"], "o", label=learner)
        right.plot(x, rows["agent_regret_slope"], "o", label=learner)
    left.axhline(0.98, color="grey", ls="--", lw=1)
    right.axhline(0.7, color="grey", ls="--", lw=1)
    for ax, label in ((left, "normalised greedy agent value"), (right, "agent regret slope (second half)")):
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_ylabel(label)
    left.legend(fontsize=8)
    fig.suptitle("Each learner alone on random MDPs: how close to its own optimum")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

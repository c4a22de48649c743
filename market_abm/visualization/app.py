"""Watch a principal steer learning agents on a network: `market-abm viz`.

Learning agents (firms, households, pricing algorithms) sit on the nodes of a graph and act each
step; the institution posts transfers. The page shows the network (colour: local state; marker:
action just taken; size and outline: transfer received), welfare against the benchmark, cumulative
welfare regret, transfers paid and the share of agents taking the target action, with Phase 1 and
Phase 2 of the two-phase mechanism marked on the time axis.
"""

from __future__ import annotations

import numpy as np
import solara
from matplotlib.transforms import blended_transform_factory
from mesa.visualization import SolaraViz, make_plot_component

from market_abm.metrics import summarise
from market_abm.registry import GRAPHS, LEARNERS, MECHANISMS, SCENARIOS, SCHEMES
from market_abm.visualization.market_view import MAX_AGENTS, SCENARIO_DEFAULT, MarketView
from market_abm.visualization.network_view import NetworkRenderer

PHASES = {0: "fixed rule", 1: "Phase 1: estimating transfers", 2: "Phase 2: steering"}
PHASE_SHADES = {1: "tab:orange", 2: "tab:green"}


def select(label, value, values):
    return {"type": "Select", "label": label, "value": value, "values": list(values)}


model_params = {
    "scenario_name": select("Scenario", "pollution", sorted(SCENARIOS)),
    "n_agents": {"type": "InputText", "label": f"Number of agents (1 to {MAX_AGENTS})", "value": "50"},
    "graph": select("Graph", "watts_strogatz", GRAPHS),
    "mechanism": select("Mechanism", "two_phase", sorted(MECHANISMS)),
    "scheme": select("Transfer scheme", "stationary", sorted(SCHEMES)),
    "learner": select("Learner", SCENARIO_DEFAULT, [SCENARIO_DEFAULT] + sorted(LEARNERS)),
    "seed": {"type": "InputText", "label": "Seed (a whole number >= 0)", "value": "42"},
}


def mark_phases(ax, phases):
    """Shade the steps of Phase 1 and Phase 2 on a time axis (x = row of the step)."""
    phases = np.asarray(phases)
    if phases.size == 0:
        return
    starts = np.flatnonzero(np.r_[True, phases[1:] != phases[:-1]])
    ends = np.r_[starts[1:], phases.size]
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for start, end in zip(starts, ends):
        phase = int(phases[start])
        if phase in PHASE_SHADES:
            ax.axvspan(start - 0.5, end - 0.5, color=PHASE_SHADES[phase], alpha=0.12, lw=0)
            ax.text(start, 0.98, f"Phase {phase}", transform=top, va="top", fontsize="small",
                    color=PHASE_SHADES[phase])


def time_plot(measure, title, ylabel, labels, decorate=None):
    """A Mesa plot of DataCollector columns against the step, titled and with the phases marked."""

    def post_process(view):
        def finish(ax):
            frame = view.datacollector.get_model_vars_dataframe()
            ax.set_title(title, fontsize="medium")
            ax.set_ylabel(ylabel)
            if decorate is not None:
                decorate(ax, view.market, frame)
            mark_phases(ax, frame["phase"])
            if len(frame):
                ax.legend(labels=labels, loc="lower left", fontsize="small")

        return finish

    def Plot(view):
        if view.market is None:
            return solara.Info(f"{title}: no model (see the message above).")
        make, _ = make_plot_component(measure, post_process=post_process(view))
        return make(view)

    return Plot


def episode_mean(ax, market, frame):
    """The welfare per step averaged over the last episode's worth of steps."""
    if len(frame):
        ax.lines[0].set(alpha=0.35, linewidth=0.8)
        ax.lines[1].set(linestyle="--")
        smooth = frame["welfare"].rolling(market.env.horizon, min_periods=1).mean()
        ax.plot(smooth.index, smooth, color="tab:blue", linewidth=2)


def target_axis(ax, market, frame):
    """Shares on [0, 1]; the target is the mechanism's Phase 2 plan, else the desirable action."""
    ax.set_ylim(-0.03, 1.1)
    ax.set_ylabel(f"share (target: Phase 2 plan, else {market.env.action_names[market.env.subsidised_action]})")


WelfarePlot = time_plot({"welfare": "tab:blue", "benchmark_welfare": "black"}, "Welfare against the benchmark",
                        "welfare per agent per step", ["welfare", "benchmark (optimum per step)", "episode mean"],
                        episode_mean)
RegretPlot = time_plot({"cumulative_regret": "tab:red"}, "Cumulative welfare regret", "per agent",
                       ["cumulative regret"])
TransfersPlot = time_plot({"transfers": "tab:green"}, "Transfers paid per step", "mean per agent (payoff units)",
                          ["transfers paid"])
TargetPlot = time_plot({"share_target": "tab:purple"}, "Share of agents taking the target action", "share",
                       ["target action"], target_axis)


def Summary(view):
    """The figures that say how well the institution is doing now: gap closed, phase, transfers."""
    if view.market is None:
        return solara.Error(f"Cannot build the model: {view.error}", icon=True)
    market = view.market
    figures = summarise(market.episodes_frame(), market.benchmarks)
    gap = figures["gap_closed"]
    gap_text = "n/a until the first episode ends" if market.episode == 0 else "n/a (no benchmark)" if np.isnan(gap) \
        else f"{gap:.1%}"
    paid = float(market.transfers_received.sum())
    settings = market.settings
    scheme = f" ({settings['scheme']})" if settings["scheme"] else ""
    return solara.Markdown(
        f"**Gap closed:** {gap_text}  \n"
        f"**Phase:** {PHASES.get(market.phase, market.phase)}  \n"
        f"**Total transfers paid:** {paid:.2f} ({paid / market.env.n_agents:.3f} per agent)  \n"
        f"**{progress(market)}**  \n"
        f"**Model:** {settings['scenario']}, {settings['n_agents']} agents on {settings['graph']}, "
        f"{settings['mechanism']}{scheme}, {settings['learner']} learners  \n"
        f"**Benchmark:** {market.benchmarks['benchmark']}"
    )


def progress(market):
    """How far the market has run: episodes and steps, or review periods and periods."""
    if market.continuing:
        return (f"Review periods completed: {market.episode} ({market.period} periods, {market.env.review_every} "
                f"per review; {market.converged_share:.0%} of sessions converged)")
    return f"Episodes completed: {market.episode} ({market.steps} steps, {market.env.horizon} per episode)"


@solara.component
def Page():
    """One session's page: its own model and renderer, rebuilt by Reset from the controls."""
    view = solara.use_memo(MarketView, [])
    renderer = solara.use_memo(lambda: NetworkRenderer(view), [])
    return SolaraViz(view, renderer, components=[Summary, WelfarePlot, RegretPlot, TransfersPlot, TargetPlot],
                     model_params=model_params, name="market_abm: a principal steering learners on a network")

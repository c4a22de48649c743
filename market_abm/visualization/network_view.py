"""The network view: agents on their nodes, coloured by what the scenario maps (the local state; a
pricing market's map shows the price each firm charged), shaped by the action just taken, and
sized and outlined by the transfer just received.

The layout is computed once per graph (cached on its edges) when a model is built, never per step.
Above `LAYOUT_LIMIT` nodes a layout is too slow to draw, so the view shows the population in
aggregate instead: agents per mapped category, split by the action just taken.
"""

from __future__ import annotations

from functools import lru_cache

import networkx as nx
import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.lines import Line2D
from mesa.visualization import SpaceRenderer
from mesa.visualization.components import AgentPortrayalStyle
from mesa.visualization.space_drawers import NetworkSpaceDrawer

LAYOUT_LIMIT = 300  # nodes; above this the view is aggregate
STATE_COLOURS = "YlOrRd"  # light = low stock or risk, dark red = high
ACTION_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
ACTION_COLOURS = ("tab:green", "tab:blue", "tab:red", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:gray")
SUBSIDY, TAX, NOTHING = "black", "tab:blue", "0.6"  # outline: what the agent was paid this step


def node_size(n_nodes):
    """Marker area (points^2) of an agent with no transfer: smaller nodes on bigger graphs."""
    return float(np.clip(8000 / max(n_nodes, 1), 30, 220))


def agent_portrayal(agent):
    """Fill colour = mapped category (local state, or price), marker = action just taken, size and
    outline = transfer received."""
    market = agent.model
    transfer = agent.last_transfer
    scale = max(float(np.abs(market.offers).max()), 1e-9) if hasattr(market, "offers") else 1.0
    outline = SUBSIDY if transfer > 0 else TAX if transfer < 0 else NOTHING
    categories, _, _ = market.env.node_values(market.states, market.actions)
    return AgentPortrayalStyle(
        color=int(categories[agent.row]),
        marker=ACTION_MARKERS[agent.action % len(ACTION_MARKERS)],
        size=node_size(market.env.n_agents) * (1.0 + 2.0 * min(abs(transfer) / scale, 1.0)),
        edgecolors=outline,
        linewidths=2.0 if transfer else 0.5,
        zorder=2,
    )


@lru_cache(maxsize=16)
def _layout(kind, n_nodes, edges):
    graph = nx.Graph()
    graph.add_nodes_from(range(n_nodes))
    graph.add_edges_from(edges)
    if kind == "ring":
        return nx.circular_layout(graph)
    if kind == "grid_2d":
        width = int(np.sqrt(n_nodes))
        return {i: np.array([i % width, -(i // width)], float) for i in range(n_nodes)}
    return nx.spring_layout(graph, seed=0)


def graph_layout(graph, kind=None):
    """Node positions `{node: (x, y)}`, computed once per graph (cached on its edges): a circle for a
    ring, the lattice for a grid, a spring layout otherwise."""
    edges = tuple(sorted((min(u, v), max(u, v)) for u, v in graph.edges()))
    return _layout(kind, graph.number_of_nodes(), edges)


class AggregateDrawer:
    """Draws the population in aggregate: agents per local state, stacked by the action just taken."""

    s_default = 1

    def __init__(self, view, title=None):
        self.view = view
        self.title = title

    def draw_matplotlib(self, ax, **_):
        market = self.view.market
        ax.set_axis_on()
        if market is None:
            ax.set_axis_off()
            ax.set_title(self.title or "no model", color="tab:red", wrap=True)
            return ax
        env = market.env
        ax.containers.clear()  # last step's bars (their patches are already removed by the page)
        categories, label, names = env.node_values(market.states, market.actions)
        counts = np.zeros((env.n_actions, len(names)))
        np.add.at(counts, (market.actions, categories), 1)
        bottom, bars = np.zeros(len(names)), []
        for a, name in enumerate(env.action_names):
            bars.append(ax.bar(np.arange(len(names)), counts[a], bottom=bottom, label=name,
                               color=ACTION_COLOURS[a % len(ACTION_COLOURS)]))
            bottom += counts[a]
        ax.set_xticks(np.arange(len(names)), names, rotation=30)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_xlabel(label)
        ax.set_ylim(0, max(env.n_agents, 1))
        ax.set_ylabel("agents")
        ax.legend(handles=bars, title="action just taken", loc="upper right", fontsize="small")
        paid = market.transfers
        ax.set_title(f"{env.n_agents} agents (network not drawn above {LAYOUT_LIMIT} nodes)\n"
                     f"mean transfer received {paid.mean():+.3f}, {np.mean(paid > 0):.0%} paid a subsidy",
                     fontsize="medium")
        return ax


class NetworkRenderer(SpaceRenderer):
    """Mesa's `SpaceRenderer` for a `MarketView`: the network with a layout computed once per graph, or
    the aggregate view above `LAYOUT_LIMIT` nodes, or the reason there is no model.

    Mesa rebuilds the renderer with `type(renderer)(model=..., backend=...)` on every Reset, so the
    styling is set up here rather than by the caller.
    """

    def __init__(self, model, backend="matplotlib"):
        self.view = model
        super().__init__(model, backend=backend)
        market = model.market
        self.draws_network = isinstance(self.space_drawer, NetworkSpaceDrawer)
        self.setup_structure(node_kwargs={"node_size": 0}, edge_kwargs={"alpha": 0.35, "style": "-",
                                                                          "edge_color": "grey"})
        n_categories = len(market.env.node_values(market.states, market.actions)[2]) if market is not None else 1
        self.setup_agents(agent_portrayal, cmap=STATE_COLOURS, vmin=0, vmax=max(n_categories - 1, 1))
        if self.draws_network:
            self.add_legend(market)
        self.render()

    def _get_space_drawer(self):
        market = self.view.market
        if market is None:
            return AggregateDrawer(self.view, title=f"No model: {self.view.error}")
        if self.space is None or market.env.n_agents > LAYOUT_LIMIT:
            return AggregateDrawer(self.view)
        kind = market.settings.get("graph")
        kind = kind if isinstance(kind, str) else None
        drawer = NetworkSpaceDrawer(self.space, layout_alg=graph_layout, layout_kwargs={"kind": kind})
        if drawer.viz_xmin == drawer.viz_xmax:  # one node: give the axes some room around it
            drawer.viz_xmin, drawer.viz_xmax, drawer.viz_ymin, drawer.viz_ymax = -1.0, 1.0, -1.0, 1.0
        return drawer

    def draw_agents(self, agent_portrayal=None, **kwargs):
        """Agents on their nodes (network view only; the aggregate view draws them in its bars). While
        Reset swaps model and renderer, the page may briefly pair this renderer with the next model's
        space: nothing is drawn then."""
        if not self.draws_network or self.space is not self.view.grid:
            self.agent_mesh = self.canvas
            return self.agent_mesh
        return super().draw_agents(agent_portrayal, **kwargs)

    def add_legend(self, market):
        """A colour bar for the mapped category and a key to markers and outlines (drawn once per model)."""
        ax, env = self.canvas, market.env
        _, label, names = env.node_values(market.states, market.actions)
        n = len(names)
        colours = ListedColormap(colormaps[STATE_COLOURS](np.linspace(0, 1, n) if n > 1 else [0.0]))
        bar = ax.get_figure().colorbar(ScalarMappable(Normalize(-0.5, n - 0.5), colours), ax=ax, shrink=0.8,
                                       label=label)
        bar.set_ticks(np.arange(n), labels=names)
        handles = [Line2D([], [], marker=ACTION_MARKERS[a % len(ACTION_MARKERS)], linestyle="", color="grey",
                          markersize=8, label=name) for a, name in enumerate(env.action_names)]
        handles += [Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor=SUBSIDY,
                           markeredgewidth=2, markersize=9, label="paid a subsidy"),
                    Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor=TAX,
                           markeredgewidth=2, markersize=9, label="paid a tax")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.02), ncol=3, fontsize="small",
                  frameon=False, title="marker: action just taken; outline and size: transfer this step")

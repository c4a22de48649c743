"""Graphs, the diffusing pollution stock, and the network welfare benchmarks."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from market_abm import MarketModel
from market_abm.environments.graphs import make_topology
from market_abm.environments.pollution import PollutionEnv, PollutionParams, diffusion_operator
from market_abm.registry import GRAPHS


@pytest.mark.parametrize("graph", GRAPHS)
def test_built_in_graphs_are_symmetric_simple_and_sized(graph):
    topology = make_topology(graph, 36, np.random.default_rng(0))
    adjacency = topology.adjacency
    assert topology.n_nodes == 36 and sp.issparse(adjacency)
    assert (adjacency != adjacency.T).nnz == 0 and adjacency.diagonal().sum() == 0
    assert adjacency.nnz > 0


def test_graph_parameters_are_keyword_arguments():
    dense = make_topology("erdos_renyi", 200, np.random.default_rng(0), mean_degree=10)
    sparse = make_topology("erdos_renyi", 200, np.random.default_rng(0), mean_degree=2)
    assert dense.degree.mean() > 3 * sparse.degree.mean()
    assert make_topology("watts_strogatz", 100, np.random.default_rng(0), k=6, p=0.0).degree.tolist() == [6] * 100


@pytest.mark.parametrize("graph, params, field", [
    ("watts_strogatz", {"k": 3}, "k"),
    ("ring", {"k": -2}, "k"),
    ("watts_strogatz", {"p": 1.5}, "p"),
    ("erdos_renyi", {"mean_degree": -1}, "mean_degree"),
    ("barabasi_albert", {"m": 0}, "m"),
    ("grid_2d", {"width": 7}, "width"),
    ("ring", {"k": 2, "colour": 1}, "graph_params"),
])
def test_bad_graph_parameters_name_the_parameter(graph, params, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        MarketModel(n_agents=20, graph=graph, graph_params=params, rng=0)


def test_user_graphs_are_relabelled_keeping_the_label(tmp_path):
    graph = nx.Graph([("paris", "lyon"), ("lyon", "nice")])
    model = MarketModel(n_agents=3, graph=graph, mechanism="none", rng=0)
    labels = nx.get_node_attributes(model.env.topology.to_networkx(), "label")
    assert sorted(labels.values()) == ["lyon", "nice", "paris"]
    edges = tmp_path / "edges.txt"
    edges.write_text("a b\nb c\nc d\n")
    assert MarketModel(n_agents=4, graph=str(edges), mechanism="none", rng=0).env.n_agents == 4


def test_diffusion_conserves_mass_when_decay_is_zero():
    topology = make_topology("barabasi_albert", 300, np.random.default_rng(1), m=2)
    operator = diffusion_operator(topology.adjacency, 0.4)
    stock = np.random.default_rng(2).uniform(0, 4, 300)
    assert (operator @ stock).sum() == pytest.approx(stock.sum())
    params = PollutionParams(decay=0.0, emissions=(0.0, 0.0, 0.0), levels=50)
    env = PollutionEnv(topology, params)
    states = np.random.default_rng(3).integers(0, 20, 300)
    draws = np.random.default_rng(4).random((300, 2000))
    next_states, _, _ = env.dynamics(states[:, None].repeat(2000, 1), np.zeros((300, 2000), int), draws)
    assert next_states.sum(axis=0).mean() == pytest.approx(states.sum(), rel=1e-3)  # rounding is unbiased


def test_emissions_spread_to_neighbours_only():
    topology = make_topology("ring", 10, np.random.default_rng(0), k=2)
    env = PollutionEnv(topology, PollutionParams(decay=0.0))
    emitted = np.zeros(10)
    emitted[0] = 2.0
    spread = env.operator @ emitted
    assert spread[[1, 9]].min() > 0 and spread[2:9].max() == 0


def test_network_benchmarks_bracket_laissez_faire():
    model = MarketModel(n_agents=50, graph="watts_strogatz", mechanism="none", rng=0)
    bench = model.benchmarks
    assert bench["benchmark"] == "best_local_policy"
    assert bench["optimal_welfare"] > bench["laissez_faire_welfare"]
    model.run_episodes(150)
    summary = model.summary()
    assert summary["benchmark"] == "best_local_policy" and abs(summary["gap_closed"]) < 0.2


def test_same_rng_same_model_dataframe_on_a_network():
    frames = []
    for _ in range(2):
        model = MarketModel(n_agents=60, graph="watts_strogatz", mechanism="two_phase", rng=11)
        model.run_steps(120)
        frames.append(model.steps_frame())
    assert frames[0].equals(frames[1])

"""Networks the agents sit on: built-in topologies, any networkx graph, or an edge-list file.

Every graph becomes a symmetric sparse adjacency (`scipy.sparse.csr_array`, nodes `0..N-1`). Large
built-in graphs are generated straight into CSR with numpy; the networkx graph is built only when
asked for (Mesa cells, drawing).
"""

from __future__ import annotations

import os

import networkx as nx
import numpy as np
import scipy.sparse as sp

from market_abm.core.validation import check_int, check_number

GRAPHS = ("erdos_renyi", "watts_strogatz", "barabasi_albert", "grid_2d", "ring", "star", "complete", "cliques")


class Topology:
    """A graph with integer nodes `0..N-1` and its sparse adjacency.

    Attributes:
        adjacency: symmetric `csr_array (N, N)` of 0/1 edges without self-loops.
        n_nodes: number of nodes.
        labels: original node labels (None when they already were `0..N-1`).
    """

    def __init__(self, adjacency, graph=None, labels=None):
        self.adjacency = adjacency
        self.n_nodes = adjacency.shape[0]
        self._graph = graph
        self.labels = labels

    @property
    def degree(self):
        """Number of neighbours of each node."""
        return np.diff(self.adjacency.indptr)

    def to_networkx(self):
        """The graph as networkx, with the original label as node attribute `label` where relabelled."""
        if self._graph is None:
            self._graph = nx.from_scipy_sparse_array(self.adjacency)
        return self._graph


def make_topology(graph, n_nodes, rng, **params):
    """A `Topology` from a built-in name, a networkx graph, or a path to an edge-list file."""
    if isinstance(graph, nx.Graph):
        return from_networkx(graph)
    if isinstance(graph, (str, os.PathLike)) and os.path.exists(graph):
        return from_networkx(read_edge_list(graph))
    if graph not in GRAPHS:
        raise ValueError(f"graph: must be one of {list(GRAPHS)}, a networkx graph or an edge-list file, got {graph!r}")
    n = check_int("n_agents", n_nodes, low=1)
    builder = BUILDERS[graph]
    try:
        return builder(n, rng, **params)
    except TypeError as err:
        raise ValueError(f"graph_params: {err}") from None


def read_edge_list(path):
    """A graph from a whitespace-separated edge-list file (one `u v` pair per line)."""
    try:
        return nx.read_edgelist(path, nodetype=str)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(f"graph: cannot read edge list {os.fspath(path)!r}: {err}") from None


def from_networkx(graph):
    """Relabel any networkx graph to `0..N-1` (keeping the original label as node attribute `label`)."""
    if graph.number_of_nodes() == 0:
        raise ValueError("graph: has no nodes")
    graph = nx.Graph(graph)
    graph.remove_edges_from(nx.selfloop_edges(graph))
    nodes = list(graph.nodes)
    labels = None
    if nodes != list(range(len(nodes))):
        labels = nodes
        graph = nx.convert_node_labels_to_integers(graph, label_attribute="label")
    adjacency = sp.csr_array(nx.to_scipy_sparse_array(graph, nodelist=range(len(nodes)), format="csr"))
    adjacency.data[:] = 1.0
    return Topology(adjacency, graph, labels)


def from_edges(n, rows, cols):
    """Symmetric 0/1 CSR adjacency from undirected edges, dropping self-loops and duplicates."""
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    both_r, both_c = np.concatenate([rows, cols]), np.concatenate([cols, rows])
    adjacency = sp.csr_array((np.ones(both_r.size), (both_r, both_c)), shape=(n, n))
    adjacency.sum_duplicates()
    adjacency.data[:] = 1.0
    return Topology(adjacency)


def ring(n, rng, k=2):
    """Each node linked to its `k` nearest neighbours on a ring (`k` even)."""
    k = check_int("k", k, low=0)
    if k % 2:
        raise ValueError(f"k: must be even, got {k}")
    nodes = np.arange(n)
    rows = np.repeat(nodes, k // 2)
    cols = (rows + np.tile(np.arange(1, k // 2 + 1), n)) % n
    return from_edges(n, rows, cols)


def watts_strogatz(n, rng, k=4, p=0.1):
    """Small world: a ring lattice of degree `k` whose edges are rewired with probability `p`."""
    p = check_number("p", p, low=0.0, high=1.0)
    base = ring(n, rng, k=k).adjacency
    rows, cols = sp.triu(base, k=1).nonzero()
    rewire = rng.random(rows.size) < p
    cols = np.where(rewire, rng.integers(0, n, size=rows.size), cols)
    return from_edges(n, rows, cols)


def erdos_renyi(n, rng, mean_degree=4.0):
    """Random graph with each pair linked independently, `mean_degree` links per node on average."""
    mean_degree = check_number("mean_degree", mean_degree, low=0.0)
    if n > 1 and mean_degree > n - 1:
        raise ValueError(f"mean_degree: must be <= n_agents - 1, got {mean_degree}")
    m = rng.binomial(n * (n - 1) // 2, mean_degree / max(n - 1, 1)) if n > 1 else 0
    return from_edges(n, rng.integers(0, n, size=m), rng.integers(0, n, size=m))


def barabasi_albert(n, rng, m=2):
    """Preferential attachment: each new node links to `m` existing nodes chosen by degree."""
    m = check_int("m", m, low=1)
    if m >= n:
        raise ValueError(f"m: must be < n_agents, got {m}")
    graph = nx.barabasi_albert_graph(n, m, seed=int(rng.integers(2**31)))
    return from_networkx(graph)


def grid_2d(n, rng, width=None):
    """A square-ish lattice of `width` columns (default the integer square root), 4 neighbours each."""
    width = int(np.sqrt(n)) if width is None else check_int("width", width, low=1)
    if width < 1 or n % width:
        raise ValueError(f"width: must divide n_agents, got {width} for {n}")
    nodes = np.arange(n)
    right = nodes[(nodes % width) < width - 1]
    down = nodes[nodes + width < n]
    return from_edges(n, np.concatenate([right, down]), np.concatenate([right + 1, down + width]))


def star(n, rng):
    """One hub linked to every other node."""
    return from_edges(n, np.zeros(n - 1, dtype=int), np.arange(1, n))


def complete(n, rng):
    """Every pair linked."""
    rows, cols = np.triu_indices(n, k=1)
    return from_edges(n, rows, cols)


def cliques(n, rng, size=2):
    """`n / size` disjoint complete graphs of `size` nodes each (nodes `k * size .. (k + 1) * size - 1`):
    independent groups, such as independent markets of `size` firms."""
    size = check_int("size", size, low=1)
    if n % size:
        raise ValueError(f"n_agents: must be a multiple of the clique size {size}, got {n}")
    first, second = np.triu_indices(size, k=1)
    offsets = np.repeat(np.arange(0, n, size), first.size)
    return from_edges(n, offsets + np.tile(first, n // size), offsets + np.tile(second, n // size))


BUILDERS = {
    "erdos_renyi": erdos_renyi, "watts_strogatz": watts_strogatz, "barabasi_albert": barabasi_albert,
    "grid_2d": grid_2d, "ring": ring, "star": star, "complete": complete, "cliques": cliques,
}

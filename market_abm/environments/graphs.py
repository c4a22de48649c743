"""Networks the agents sit on: built-in topologies, any networkx graph, or an edge-list file.

Every graph becomes a symmetric sparse adjacency (`scipy.sparse.csr_array`, nodes `0..N-1`). Large
built-in graphs are generated straight into CSR with numpy; the networkx graph is built only when
asked for (Mesa cells, drawing).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp

from market_abm.core.validation import check_int, check_keywords, check_memory, check_number

RING_DEGREE, SMALL_WORLD_DEGREE = 2, 4  # default neighbours per node of `ring` and `watts_strogatz`
NODE_BYTES, LINK_BYTES = 64, 128  # memory per node and per link while a built-in graph is built


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
    """A `Topology` from a built-in name, a networkx graph, or an edge-list file.

    A built-in name always means the built-in graph, whatever files are about: a file is given as a
    path (`./ring`, `data/edges`), a name with an extension (`edges.txt`) or a `pathlib.Path`. A
    networkx graph or a file brings its own nodes (`n_nodes` is then 1 or their number) and takes no
    parameters; a built-in graph's parameters are checked against its builder, before it is built.
    """
    n = check_int("n_agents", n_nodes, low=1)
    if isinstance(graph, str) and graph in GRAPHS:
        builder = GRAPHS[graph]
        params = check_keywords("graph_params", params, builder, given=("n", "rng"), owner=graph)
        check_memory("n_agents", n * (NODE_BYTES + LINK_BYTES), f"a graph of {n} nodes")
        links = expected_links(graph, n, params)
        check_memory("graph", n * NODE_BYTES + links * LINK_BYTES, f"the {graph} graph of {n} nodes and about "
                                                                    f"{links:.3g} links")
        return builder(n, rng, **params)
    if isinstance(graph, nx.Graph):
        what, graph = "a networkx graph", graph
    else:
        path = graph_file(graph)
        if path is None:
            raise ValueError(f"graph: must be one of {list(GRAPHS)}, a networkx graph or an edge-list file given as "
                             f"a path (./name, or a name with an extension), got {graph!r}{file_hint(graph)}")
        what, graph = f"the edge-list file {os.fspath(path)!r}", read_edge_list(path)
    if params:
        raise ValueError(f"graph_params: {what} takes no parameters, got {sorted(params)[0]!r}")
    topology = from_networkx(graph, what)
    if n not in (1, topology.n_nodes):
        raise ValueError(f"n_agents: {what} has {topology.n_nodes} nodes, got {n} (give 1 or {topology.n_nodes})")
    return topology


def graph_file(graph):
    """The path of an edge-list file if `graph` names one (a `PathLike`, or a string with a folder or an
    extension, or starting with a dot), else None. A bare name is never a file: built-in names win."""
    if isinstance(graph, os.PathLike):
        return Path(graph)
    if not isinstance(graph, str) or not graph or graph in GRAPHS:
        return None
    path = Path(graph)
    if "/" in graph or os.sep in graph or graph.startswith(".") or path.suffix:
        return path
    return None


def file_hint(graph):
    """A hint when a bare name that is not a built-in graph is also a file here."""
    if isinstance(graph, str) and graph and os.path.isfile(graph):
        return f" (to read the file {graph!r}, give it as ./{graph} or with --graph-file)"
    return ""


def read_edge_list(path):
    """A graph from a whitespace-separated edge-list file (one `u v` pair per line)."""
    if not path.exists():
        raise ValueError(f"graph: no edge-list file {os.fspath(path)!r}")
    if not path.is_file():
        raise ValueError(f"graph: {os.fspath(path)!r} is not a file")
    try:
        return nx.read_edgelist(path, nodetype=str)
    except (OSError, TypeError, ValueError, IndexError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"graph: cannot read edge list {os.fspath(path)!r}: {reason}") from None


def expected_links(graph, n, params):
    """About how many links the built-in `graph` on `n` nodes will have (at most every pair), from its
    parameters and its builder's `links_per_node`, so that its size is known before it is built."""
    arguments = inspect.signature(GRAPHS[graph]).bind(n, None, **params)
    arguments.apply_defaults()
    per_node = GRAPHS[graph].links_per_node(n, arguments.arguments)
    return min(max(float(per_node), 0.0) * n, n * (n - 1) / 2)


def links_per_node(estimate):
    """Declare a builder's links per node, `estimate(n, arguments)` from its bound arguments (defaults
    applied), read by `expected_links` before the graph is built."""
    def declare(builder):
        builder.links_per_node = estimate
        return builder
    return declare


def number(value, default=0):
    """A parameter as a number for `expected_links`: one that is not a number counts as `default` (the
    builder then refuses it)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def from_networkx(graph, what="the graph"):
    """Relabel any networkx graph to `0..N-1` (keeping the original label as node attribute `label`);
    `what` names the graph in messages."""
    if graph.number_of_nodes() == 0:
        raise ValueError(f"graph: {what} has no nodes")
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


@links_per_node(lambda n, a: number(a["k"], RING_DEGREE) / 2)
def ring(n, rng, k=None):
    """A ring: each node linked to its `k` nearest neighbours. `k` is even and below `n`, by default 2
    (see `lattice_degree`)."""
    return from_edges(n, *ring_lattice(n, lattice_degree(n, k, RING_DEGREE)))


@links_per_node(lambda n, a: number(a["k"], SMALL_WORLD_DEGREE) / 2)
def watts_strogatz(n, rng, k=None, p=0.1):
    """Small world: a ring lattice of degree `k` whose edges are rewired with probability `p`. `k` is by
    default 4 (see `lattice_degree`)."""
    p = check_number("p", p, low=0.0, high=1.0)
    base = from_edges(n, *ring_lattice(n, lattice_degree(n, k, SMALL_WORLD_DEGREE))).adjacency
    rows, cols = sp.triu(base, k=1).nonzero()
    rewire = rng.random(rows.size) < p
    cols = np.where(rewire, rng.integers(0, n, size=rows.size), cols)
    return from_edges(n, rows, cols)


def lattice_degree(n, k, default):
    """A ring lattice's degree: `k`, even and below the `n` nodes (any on one node, which has no
    neighbours); or, if not given, `default`, which on a graph too small for it links every pair."""
    if k is None:
        return default
    k = check_int("k", k, low=0)
    if k % 2:
        raise ValueError(f"k: must be even, got {k}")
    if n > 1 and k > n - 1:
        raise ValueError(f"k: must be below the number of nodes ({n}), got {k}")
    return k


def ring_lattice(n, k):
    """The edges `(rows, cols)` from every node to the `k / 2` next ones around a ring."""
    rows = np.repeat(np.arange(n), k // 2)
    return rows, (rows + np.tile(np.arange(1, k // 2 + 1), n)) % n


@links_per_node(lambda n, a: number(a["mean_degree"]) / 2)
def erdos_renyi(n, rng, mean_degree=4.0):
    """Random graph with each pair linked independently, `mean_degree` links per node on average."""
    mean_degree = check_number("mean_degree", mean_degree, low=0.0)
    if n > 1 and mean_degree > n - 1:
        raise ValueError(f"mean_degree: must be <= n_agents - 1, got {mean_degree}")
    m = rng.binomial(n * (n - 1) // 2, mean_degree / max(n - 1, 1)) if n > 1 else 0
    return from_edges(n, rng.integers(0, n, size=m), rng.integers(0, n, size=m))


@links_per_node(lambda n, a: number(a["m"]))
def barabasi_albert(n, rng, m=2):
    """Preferential attachment: each new node links to `m` existing nodes chosen by degree."""
    m = check_int("m", m, low=1)
    if m >= n:
        raise ValueError(f"m: must be < n_agents, got {m}")
    graph = nx.barabasi_albert_graph(n, m, seed=int(rng.integers(2**31)))
    return from_networkx(graph)


@links_per_node(lambda n, a: 2)
def grid_2d(n, rng, width=None):
    """A square-ish lattice of `width` columns (default the integer square root), 4 neighbours each."""
    width = int(np.sqrt(n)) if width is None else check_int("width", width, low=1)
    if width < 1 or n % width:
        raise ValueError(f"width: must divide n_agents, got {width} for {n}")
    nodes = np.arange(n)
    right = nodes[(nodes % width) < width - 1]
    down = nodes[nodes + width < n]
    return from_edges(n, np.concatenate([right, down]), np.concatenate([right + 1, down + width]))


@links_per_node(lambda n, a: 1)
def star(n, rng):
    """One hub linked to every other node."""
    return from_edges(n, np.zeros(n - 1, dtype=int), np.arange(1, n))


@links_per_node(lambda n, a: n / 2)
def complete(n, rng):
    """Every pair linked."""
    rows, cols = np.triu_indices(n, k=1)
    return from_edges(n, rows, cols)


@links_per_node(lambda n, a: (number(a["size"], 2) - 1) / 2)
def cliques(n, rng, size=2):
    """Disjoint complete graphs of `size` nodes each: independent groups, such as independent markets of
    `size` firms. The `n / size` groups are the nodes `k * size .. (k + 1) * size - 1`."""
    size = check_int("size", size, low=1)
    if n % size:
        raise ValueError(f"n_agents: must be a multiple of the clique size {size}, got {n}")
    first, second = np.triu_indices(size, k=1)
    offsets = np.repeat(np.arange(0, n, size), first.size)
    return from_edges(n, offsets + np.tile(first, n // size), offsets + np.tile(second, n // size))


GRAPHS = {  # the built-in graphs by name, each with its builder `(n, rng, **params) -> Topology`
    "erdos_renyi": erdos_renyi, "watts_strogatz": watts_strogatz, "barabasi_albert": barabasi_albert,
    "grid_2d": grid_2d, "ring": ring, "star": star, "complete": complete, "cliques": cliques,
}

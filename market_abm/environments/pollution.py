"""Pollution control: firms on a network choose how much to produce; emissions accumulate into a
pollution stock that decays and diffuses to neighbouring nodes; convex damage falls mostly on third
parties. The regulator (principal) owns that damage and may pay abatement subsidies.

Units: the stock is measured in whole pollution units (levels `0..levels-1`); profit and damage
are payoffs per firm per step. With one firm on one node this is exactly `single_node_mdp(params)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from market_abm.core.compiled import compiled
from market_abm.core.mdp import TabularMDP, cumulative, inverse_cdf
from market_abm.core.validation import check_array, check_distribution, check_int, check_number
from market_abm.environments.network import NetworkEnv


@dataclass(frozen=True)
class PollutionParams:
    """The default instance: 5 stock levels, 6 steps, three actions from abatement to expansion.

    Attributes:
        levels: number of stock levels (0 = clean).
        horizon: steps per episode.
        action_names, emissions, profits: per action, emissions (stock units) and profit (payoff).
        decay: share of the stock that disappears each step.
        diffusion: share of a node's stock that moves to its neighbours each step.
        damage: damage per step at the top stock level; `convexity` is its exponent.
        damage_share: share of its own node's damage a firm bears (partial internalisation).
        initial: distribution of the stock at the start of an episode (default uniform).
    """

    levels: int = 5
    horizon: int = 6
    action_names: tuple = ("abate", "produce", "expand")
    emissions: tuple = (0.0, 1.0, 2.0)
    profits: tuple = (0.0, 0.45, 0.6)
    decay: float = 0.3
    diffusion: float = 0.3
    damage: float = 1.0
    convexity: float = 2.0
    damage_share: float = 0.25
    initial: tuple | None = field(default=None)

    def __post_init__(self):
        check_int("levels", self.levels, low=2)
        check_int("horizon", self.horizon, low=1)
        n = len(self.action_names)
        if n < 2 or len(self.emissions) != n or len(self.profits) != n:
            raise ValueError("emissions: action_names, emissions and profits must have the same length >= 2")
        for e in self.emissions:
            check_number("emissions", e, low=0.0)
        for p in self.profits:
            check_number("profits", p, low=-1.0, high=1.0)
        check_number("decay", self.decay, low=0.0, high=1.0)
        check_number("diffusion", self.diffusion, low=0.0, high=1.0)
        check_number("damage", self.damage, low=0.0, high=1.0)
        check_number("convexity", self.convexity, low=1.0)
        check_number("damage_share", self.damage_share, low=0.0, high=1.0)
        if self.initial is not None:
            check_distribution("initial", check_array("initial", self.initial, shape=(self.levels,)))

    @property
    def initial_distribution(self):
        return np.full(self.levels, 1.0 / self.levels) if self.initial is None else np.asarray(self.initial, float)

    def damage_at(self, stock):
        """Damage per step at a stock level (convex)."""
        return self.damage * (np.asarray(stock, float) / (self.levels - 1)) ** self.convexity

    def rewards(self):
        """Private reward `r (S, A)` (profit minus own share of damage) and external reward `u (S, A)`."""
        damage = self.damage_at(np.arange(self.levels))[:, None]
        shape = (self.levels, len(self.profits))
        private = np.asarray(self.profits)[None, :] - self.damage_share * damage
        return private, np.broadcast_to(-(1 - self.damage_share) * damage, shape).copy()

    def emitted(self, stock, actions):
        """Stock after decay plus this step's emissions, before diffusion."""
        return (1.0 - self.decay) * stock + np.asarray(self.emissions)[actions]

    def split(self, stock):
        """A continuous stock as its lower level and the probability of rounding up (unbiased rounding)."""
        x = np.clip(stock, 0.0, self.levels - 1.0)
        low = np.minimum(np.floor(x), self.levels - 2)
        return low.astype(np.int64), x - low


def single_node_mdp(params=None):
    """The paper setting: one firm on one node, as an exact `TabularMDP`."""
    params = params or PollutionParams()
    s = np.arange(params.levels)
    low, up = params.split(params.emitted(s[:, None], np.arange(len(params.emissions))[None, :]))
    transition = np.zeros((params.levels, len(params.emissions), params.levels))
    np.put_along_axis(transition, low[..., None], (1.0 - up)[..., None], axis=-1)
    np.put_along_axis(transition, low[..., None] + 1, up[..., None], axis=-1)
    private, external = params.rewards()
    return TabularMDP(transition, private, external, params.horizon, params.initial_distribution)


class PollutionEnv(NetworkEnv):
    """Firms on the nodes of a network; each observes its node's stock level and the step."""

    name = "pollution"
    subsidised_action = 0

    def __init__(self, topology, params=None):
        self.params = params or PollutionParams()
        p = self.params
        super().__init__(topology, p.levels, len(p.emissions), p.horizon)
        self.action_names = list(p.action_names)
        self.state_names = [f"stock {s}" for s in range(p.levels)]
        self.private, self.external = p.rewards()
        self.emitted = p.emitted(np.arange(p.levels)[:, None], np.arange(self.n_actions)[None, :])  # (S, A)
        self._initial_cdf = cumulative(p.initial_distribution)
        self.operator = diffusion_operator(topology.adjacency, p.diffusion)
        self.csr = compact_csr(self.operator)

    def initial_states(self, uniforms):
        return inverse_cdf(self._initial_cdf, uniforms)

    def dynamics(self, states, actions, uniforms):
        """Decay, emit, diffuse over the network, then round the stock to whole units."""
        worlds = [np.ascontiguousarray(x.reshape(len(x), -1).T) for x in (states, actions, uniforms)]
        outcome = diffuse_and_round(*self.csr, self.emitted, self.private, self.external, *worlds,
                                    float(self.params.levels - 1))
        return tuple(part.T.reshape(states.shape) for part in outcome)

    def deviation_counts(self, states, actions):
        """Had a node alone taken action `b`, its stock would move by the share it keeps of the extra emission."""
        p = self.params
        emissions = np.asarray(p.emissions)
        stock = self.operator @ p.emitted(states, actions)
        kept = self.operator.diagonal()[:, None]
        low, up = p.split(stock[:, None] + kept * (emissions[None, :] - emissions[actions][:, None]))
        cells = (states[:, None] * self.n_actions + np.arange(self.n_actions)[None, :]) * self.n_states
        size = self.n_states * self.n_actions * self.n_states
        counts = np.bincount((cells + low).ravel(), (1.0 - up).ravel(), minlength=size)
        counts += np.bincount((cells + low + 1).ravel(), up.ravel(), minlength=size)
        return counts.reshape(self.n_states, self.n_actions, self.n_states)

    def single_node_mdp(self):
        return single_node_mdp(self.params)

    def external_range(self):
        """Third parties bear at most the damage at the top stock level, and at least none."""
        return float(self.external.min()), float(self.external.max())

    def payoff_range(self):
        """Profit net of the firm's own damage share ranges over the profits and stock levels: a public bound."""
        return float(self.private.min()), float(self.private.max())

    def pigouvian_offers(self):
        """Tax per unit of emission: the third-party marginal damage it causes over the rest of the
        episode, carried forward by the decay and diffusion operator and priced at the marginal damage
        of the emitter's current stock level."""
        p = self.params
        own_share = own_node_share(self.operator, p.decay, p.horizon)
        levels = np.arange(p.levels)
        marginal = p.damage * p.convexity * (levels / (p.levels - 1)) ** (p.convexity - 1) / (p.levels - 1)
        carried = (1.0 - p.decay) ** np.arange(p.horizon)
        external = carried - p.damage_share * own_share  # (k,) units reaching others, per unit emitted
        per_unit = np.array([external[: p.horizon - 1 - h].sum() for h in range(p.horizon)])
        return -per_unit[:, None, None] * marginal[None, :, None] * np.asarray(p.emissions)[None, None, :]


@compiled
def diffuse_and_round(indptr, indices, weights, emitted, private, external, states, actions, uniforms, top):
    """One step of every node `i` in every world `w` (arrays `(W, N)`): the stock after decay and
    emissions `emitted (S, A)` spreads by the CSR operator `(indptr, indices, weights)`, is capped at
    `top` and rounded up with probability its fractional part. Returns the next stock levels and each
    node's private and external rewards `(S, A)`."""
    n_worlds, n = states.shape
    n_actions = emitted.shape[1]
    emitted, private, external = emitted.ravel(), private.ravel(), external.ravel()
    next_states = np.empty((n_worlds, n), np.int64)
    private_rewards, external_rewards = np.empty((n_worlds, n)), np.empty((n_worlds, n))
    pairs, stock, received = np.empty(n, np.int64), np.empty(n), np.empty(n)
    for w in range(n_worlds):  # one pass per quantity: each loop streams through few arrays
        for i in range(n):
            pairs[i] = states[w, i] * n_actions + actions[w, i]
        for i in range(n):
            stock[i] = emitted[pairs[i]]
        k = indptr[0]
        for i in range(n):  # a while loop over unsigned indices: no range set-up or wraparound per row
            end = indptr[i + 1]
            total = 0.0
            while k < end:
                total += weights[k] * stock[indices[k]]
                k += 1
            received[i] = total
        for i in range(n):
            next_states[w, i] = np.int64(np.floor(min(received[i], top) + uniforms[w, i]))
        for i in range(n):
            private_rewards[w, i] = private[pairs[i]]
        for i in range(n):
            external_rewards[w, i] = external[pairs[i]]
    return next_states, private_rewards, external_rewards


def compact_csr(operator):
    """The operator's CSR arrays `(indptr, indices, data)` with unsigned 32-bit indices where they fit,
    which the compiled product reads faster."""
    index = np.uint32 if operator.nnz < 2**32 else np.uint64
    return operator.indptr.astype(index), operator.indices.astype(index), operator.data


def diffusion_operator(adjacency, diffusion):
    """`M = (1 - d) I + d A D^-1`: each node sends share `d` of its stock, split evenly, to its
    neighbours; columns sum to 1, so total stock is conserved (isolated nodes keep theirs)."""
    n = adjacency.shape[0]
    degree = np.asarray(adjacency.sum(axis=0)).ravel()
    isolated = degree == 0
    send = sp.csr_array(adjacency * (diffusion / np.where(isolated, 1.0, degree))[None, :])
    keep = np.where(isolated, 1.0, 1.0 - diffusion)
    return sp.csr_array(send + sp.diags_array(keep, format="csr")) if n else send


def own_node_share(operator, decay, horizon, sample=256):
    """Average share of a unit emitted at a node still at that node `k = 0..H-1` steps later,
    propagated through the operator from up to `sample` evenly spaced nodes. The mass is sparse: after
    `k` steps it covers only the nodes within `k` links of where it was emitted."""
    n = operator.shape[0]
    nodes = np.unique(np.linspace(0, n - 1, min(n, sample)).astype(int))
    columns = np.arange(nodes.size)
    mass = operator @ sp.csc_array((np.ones(nodes.size), (nodes, columns)), shape=(n, nodes.size))
    shares = []
    for _ in range(horizon):
        shares.append(np.asarray(mass[nodes, columns]).mean())
        mass = (1.0 - decay) * (operator @ mass)
    return np.array(shares)

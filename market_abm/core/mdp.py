"""Episodic finite-horizon MDP with a strategic externality, and its exact solvers.

`TabularMDP` is the paper's setting: an agent earns the private reward `r(s, a)`, third
parties bear the external reward `u(s, a)`, and society gets `w = r + u`. Transfers posted by
the principal are arrays `tau[h, s, a]` paid to the agent (negative = tax). All values are
expected sums of per-step rewards over the `horizon` steps, starting from `initial`.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.validation import check_array, check_distribution, check_int

REWARDS = ("welfare", "agent", "external")


def expected_next(transition, values):
    """`sum_s' P[..., s, a, s'] * values[..., s']`, shape `(..., S, A)`."""
    return (transition @ values[..., None, :, None])[..., 0]


def per_step(reward, horizon):
    """A reward `(S, A)` repeated over the horizon, or a per-step reward `(..., H, S, A)` as is."""
    reward = np.asarray(reward, dtype=float)
    return np.broadcast_to(reward, (horizon,) + reward.shape) if reward.ndim == 2 else reward


def backward_induction(transition, reward, horizon):
    """Optimal action values `Q (..., H, S, A)` and values `V (..., H + 1, S)`.

    `transition (..., S, A, S)` and `reward` (`(S, A)` or `(..., H, S, A)`) broadcast over leading axes.
    """
    reward = per_step(reward, horizon)
    batch = np.broadcast_shapes(transition.shape[:-3], reward.shape[:-3])
    q = np.empty(batch + reward.shape[-3:])
    v = np.zeros(batch + (horizon + 1, transition.shape[-1]))
    for h in range(horizon - 1, -1, -1):
        q[..., h, :, :] = reward[..., h, :, :] + expected_next(transition, v[..., h + 1, :])
        v[..., h, :] = q[..., h, :, :].max(axis=-1)
    return q, v


def policy_evaluation(transition, reward, policy, horizon):
    """Values `V (..., H + 1, S)` of `policy` (int `(..., H, S)` or probabilities `(..., H, S, A)`)."""
    probs = as_probabilities(policy, transition.shape[-2])
    reward = per_step(reward, horizon)
    batch = np.broadcast_shapes(transition.shape[:-3], probs.shape[:-3], reward.shape[:-3])
    v = np.zeros(batch + (horizon + 1, transition.shape[-1]))
    for h in range(horizon - 1, -1, -1):
        q = reward[..., h, :, :] + expected_next(transition, v[..., h + 1, :])
        v[..., h, :] = (probs[..., h, :, :] * q).sum(axis=-1)
    return v


def as_probabilities(policy, n_actions):
    """Action probabilities `(..., H, S, A)` from a deterministic policy `(..., H, S)` or probabilities."""
    policy = np.asarray(policy)
    if np.issubdtype(policy.dtype, np.integer):
        return np.eye(n_actions)[policy]
    return policy


def state_occupancy(transition, initial, policy, horizon):
    """Probability `d (..., H, S)` of being in state `s` at step `h` under `policy`."""
    probs = as_probabilities(policy, transition.shape[-2])
    batch = np.broadcast_shapes(transition.shape[:-3], probs.shape[:-3])
    d = np.zeros(batch + (horizon, transition.shape[-1]))
    d[..., 0, :] = initial
    for h in range(horizon - 1):
        flow = d[..., h, :, None] * probs[..., h, :, :]
        d[..., h + 1, :] = np.einsum("...sa,...sat->...t", flow, transition)
    return d


class TabularMDP:
    """The single principal / single agent setting `M = (S, A, H, mu, P, r, u)`.

    Attributes:
        transition: `P[s, a, s']`, shape `(S, A, S)`.
        agent_reward: the agent's private reward `r[s, a]` per step, shape `(S, A)`.
        external_reward: the reward `u[s, a]` borne by others and owned by the principal.
        horizon: steps per episode `H`.
        initial: the distribution `mu[s]` of the first state of each episode.
    """

    def __init__(self, transition, agent_reward, external_reward, horizon, initial):
        self.transition = check_array("transition", transition, ndim=3)
        n_states, n_actions, n_next = self.transition.shape
        if n_next != n_states:
            raise ValueError(f"transition: shape {self.transition.shape} must be (S, A, S)")
        check_distribution("transition", self.transition)
        self.agent_reward = check_array("agent_reward", agent_reward, shape=(n_states, n_actions))
        self.external_reward = check_array("external_reward", external_reward, shape=(n_states, n_actions))
        self.horizon = check_int("horizon", horizon, low=1)
        self.initial = check_array("initial", initial, shape=(n_states,))
        check_distribution("initial", self.initial)
        self.n_states, self.n_actions = n_states, n_actions

    # --- rewards -----------------------------------------------------------------
    @property
    def welfare_reward(self):
        """Social reward `w = r + u` per step: transfers cancel."""
        return self.agent_reward + self.external_reward

    def reward(self, name, transfers=None):
        """Per-step reward `(H, S, A)` of `"welfare"`, `"agent"` (plus `transfers`) or `"external"` (minus them)."""
        base = {"welfare": self.welfare_reward, "agent": self.agent_reward, "external": self.external_reward}
        if name not in base:
            raise ValueError(f"reward: must be one of {REWARDS}, got {name!r}")
        out = np.broadcast_to(base[name], (self.horizon, self.n_states, self.n_actions))
        if transfers is not None and name != "welfare":
            transfers = self.check_transfers(transfers)
            out = out + transfers if name == "agent" else out - transfers
        return out

    def check_transfers(self, transfers):
        """Transfers as a float array `(H, S, A)`; raises `ValueError` naming `transfers`."""
        return check_array("transfers", transfers, shape=(self.horizon, self.n_states, self.n_actions))

    def check_policy(self, policy, name="policy"):
        """A deterministic `(H, S)` or stochastic `(H, S, A)` policy, validated."""
        policy = np.asarray(policy)
        if np.issubdtype(policy.dtype, np.integer):
            if policy.shape != (self.horizon, self.n_states):
                raise ValueError(f"{name}: shape {policy.shape} must be (H, S) = {(self.horizon, self.n_states)}")
            if policy.min() < 0 or policy.max() >= self.n_actions:
                raise ValueError(f"{name}: actions must lie in [0, {self.n_actions})")
            return policy
        policy = check_array(name, policy, shape=(self.horizon, self.n_states, self.n_actions))
        check_distribution(name, policy)
        return policy

    # --- exact solvers ---------------------------------------------------------------
    def q_values(self, reward="agent", transfers=None):
        """Optimal action values `Q (H, S, A)` and values `V (H + 1, S)` for the named reward."""
        return backward_induction(self.transition, self.reward(reward, transfers), self.horizon)

    def agent_optimum(self):
        """The agent's optimal value `V*_A(mu)` and policy `(H, S)` under zero transfers."""
        q, v = self.q_values("agent")
        return float(self.initial @ v[0]), q.argmax(axis=-1)

    def welfare_optimum(self):
        """The welfare-optimal value `V*_W(mu)` and policy `(H, S)`."""
        q, v = self.q_values("welfare")
        return float(self.initial @ v[0]), q.argmax(axis=-1)

    def agent_gap(self):
        """`Delta_h(s, a) = V*_{A,h}(s) - Q*_{A,h}(s, a) >= 0`, shape `(H, S, A)`."""
        q, v = self.q_values("agent")
        return v[:-1, :, None] - q

    def policy_value(self, policy, reward="welfare", transfers=None):
        """Expected value `V^pi(mu)` of `policy` for the named reward, with optional transfers `(H, S, A)`."""
        policy = self.check_policy(policy)
        v = policy_evaluation(self.transition, self.reward(reward, transfers), policy, self.horizon)
        return float(self.initial @ v[0])

    def compensating_transfers(self, policy, eps):
        """Transfers `Delta_h(s, pi_h(s)) + eps` on the target actions, zero elsewhere: `pi` becomes the
        agent's unique best response, and the agent keeps `V*_A + H * eps`."""
        policy = self.check_policy(policy)
        if not np.issubdtype(policy.dtype, np.integer):
            raise ValueError("policy: compensating transfers need a deterministic policy (H, S)")
        if not np.isfinite(eps) or eps <= 0:
            raise ValueError(f"eps: must be a finite number > 0, got {eps!r}")
        target = np.eye(self.n_actions, dtype=bool)[policy]
        return np.where(target, self.agent_gap() + eps, 0.0)

    def best_response(self, transfers=None):
        """The agent's optimal policy `(H, S)` given posted transfers (lowest action index on ties)."""
        q, _ = self.q_values("agent", transfers)
        return q.argmax(axis=-1)

    def occupancy(self, policy):
        """Probability `(H, S)` of each state at each step under `policy`."""
        return state_occupancy(self.transition, self.initial, self.check_policy(policy), self.horizon)


def cumulative(probs):
    """CDF over the last axis, ending at exactly 1 (so inverse-CDF draws never overrun)."""
    cdf = np.cumsum(probs, axis=-1)
    return cdf / cdf[..., -1:]


def inverse_cdf(cdf, uniforms):
    """Index of the first CDF entry above each uniform draw; `cdf (..., S)` broadcast against `(N,)`."""
    n = np.shape(cdf)[-1]
    if np.ndim(cdf) == 1:  # one distribution for every draw: count the entries passed
        idx = np.zeros(np.shape(uniforms), dtype=np.int64)
        for edge in cdf[:-1]:
            idx += uniforms >= edge
    else:
        idx = (np.asarray(uniforms)[..., None] >= cdf).sum(axis=-1)
    return np.minimum(idx, n - 1)

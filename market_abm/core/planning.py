"""Optimistic backward induction for a population of model-based learners, one compiled pass.

Each agent plans on its own estimates: mean reward per state-action pair plus the bonus
`bonus / sqrt(n + 1)` (an untried pair is valued at the agent's best mean reward and moves
uniformly), empirical transitions, and the offers it faces. Agents are handled in blocks of
`WIDTH`, with the agent as the innermost (vectorised) loop. Payoffs are per step, in float32.

A large population is planned on two cores: a helper thread plans the last agents while the
calling thread plans the first (agents plan independently, so the plans are the same either way).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from market_abm.core.compiled import compiled

WIDTH = 256  # agents planned together: their estimates stay in cache across the horizon
UNSEEN = np.float32(1e9)  # stands in for minus infinity
SHARED_PLANNING_MIN = 4096  # agents below which handing half to a helper thread costs more than it saves


class PopulationPlanner:
    """Plans all `n_agents` agents with `plan_block`, handing the last share of them to a helper
    thread when there are enough agents and a second core. The share adapts so that both threads
    finish together (the helper also has to wake up), and only changes who plans which agent.

    Attributes:
        threads: 1 or 2 threads planning.
        share: the share of agents the helper plans.
    """

    most_threads = 2  # `plan_on_one_thread()` lowers it for the process

    def __init__(self, n_agents, threads=None):
        self.n_agents = n_agents
        if threads is None:
            threads = 2 if n_agents >= SHARED_PLANNING_MIN and usable_cores() > 1 else 1
        threads = min(threads, self.most_threads)
        self.threads = threads
        self.share = 0.4
        if threads > 1:
            helper_thread().submit(int).result()  # start the helper now, not in the first plan

    def __call__(self, *args):
        """`plan_block(*args)` for every agent."""
        n, shape = self.n_agents, unrolled(args[0])
        cut = int(round(n * (1.0 - self.share) / WIDTH)) * WIDTH
        if self.threads == 1 or not 0 < cut < n:
            plan_block(*args, 0, n, *shape)
            return
        submitted = time.perf_counter()
        helper = helper_thread().submit(started_at, plan_block, *args, cut, n, *shape)
        plan_block(*args, 0, cut, *shape)
        rate = (time.perf_counter() - submitted) / cut  # seconds per agent planned
        wake_up = helper.result() - submitted
        balanced = 0.5 * (1.0 - wake_up / (n * rate))  # (1 - s) n rate = wake_up + s n rate
        self.share = min(max(0.8 * self.share + 0.2 * balanced, 0.05), 0.5)


def unrolled(counts):
    """`(range(S), range(A))` of `counts (S, A, S, N)` as tuples, for `plan_block`: a kernel is compiled
    for each length of them (once per decision-problem size, then cached)."""
    n_s, n_a = counts.shape[:2]
    return tuple(range(n_s)), tuple(range(n_a))


def plan_on_one_thread():
    """Plan every population of this process on one thread: for the worker processes of a sweep, whose
    other cores already run other workers."""
    PopulationPlanner.most_threads = 1


def usable_cores():
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def started_at(function, *args):
    """Run `function(*args)`; return when it started (`time.perf_counter`)."""
    start = time.perf_counter()
    function(*args)
    return start


_helper = None


def helper_thread():
    """The one helper thread planning shares (started on first use, and again in a forked child)."""
    global _helper
    if _helper is None:
        _helper = ThreadPoolExecutor(1, thread_name_prefix="market-abm-planning")
    return _helper


def _forget_helper():
    global _helper
    _helper = None


os.register_at_fork(after_in_child=_forget_helper)


@compiled
def plan_block(counts, visits, reward_sum, offers, groups, bonus, growth, policy, epoch_ends, start, stop, levels,
               choices):
    """Plan every agent `i` of `counts (S, A, S, N)`, `visits`, `reward_sum (S, A, N)` facing
    `offers[groups[i]] (G, H, S, A)`; writes `policy (H, S, N)` (lowest action on ties) and, unless
    `epoch_ends` is None (every visit ends an epoch), the visits `epoch_ends (S, A, N)` that end its new
    epoch (`growth` times the visits, one more at least); only the agents `start..stop - 1` are planned.
    `levels` and `choices` are the tuples `unrolled(counts)`: their lengths are constants when this is
    compiled, so each agent's sums over actions and next states run unrolled, in registers."""
    n_s, n_a = counts.shape[0], counts.shape[1]
    horizon = policy.shape[0]
    one, bonus, growth = np.float32(1.0), np.float32(bonus), np.float32(growth)
    shared = offers.shape[0] == 1
    prob = np.empty((n_s, n_a, n_s, WIDTH), np.float32)
    reward = np.empty((n_s, n_a, WIDTH), np.float32)
    untried = np.empty((n_s, n_a, WIDTH), np.float32)
    offered = np.empty((n_a, WIDTH), np.float32)
    value, new_value = np.empty((n_s, WIDTH), np.float32), np.empty((n_s, WIDTH), np.float32)
    mean, best, inverse = np.empty(WIDTH, np.float32), np.empty(WIDTH, np.float32), np.empty(WIDTH, np.float32)
    for lo in range(start, stop, WIDTH):
        b = min(WIDTH, stop - lo)
        rows = slice(lo, lo + b)
        # estimates: mean reward plus bonus, transition probabilities, the best mean reward seen
        for j in range(b):
            best[j] = -UNSEEN
        for s in range(n_s):
            for a in range(n_a):
                seen, rewards = visits[s, a, rows], reward_sum[s, a, rows]
                for j in range(b):
                    v = seen[j]
                    tried = min(v, one)
                    inverse[j] = tried / max(v, one)
                    untried[s, a, j] = one - tried
                    r = np.float32(rewards[j]) * inverse[j]
                    best[j] = max(best[j], r - (one - tried) * UNSEEN)
                    reward[s, a, j] = r + bonus / np.sqrt(v + one)
                if epoch_ends is not None:
                    ends = epoch_ends[s, a, rows]
                    for j in range(b):
                        ends[j] = max(seen[j] * growth, seen[j] + one)
                for t in range(n_s):
                    row = counts[s, a, t, rows]
                    for j in range(b):
                        prob[s, a, t, j] = row[j] * inverse[j]
        for j in range(b):
            best[j] *= best[j] > -0.5 * UNSEEN  # nothing tried yet: 0
        for s in range(n_s):
            for a in range(n_a):
                for j in range(b):
                    reward[s, a, j] += untried[s, a, j] * best[j]
        # backward induction: one pass over the agents per (h, s), every action's value in registers
        for t in range(n_s):
            for j in range(b):
                value[t, j] = 0.0
        for h in range(horizon - 1, -1, -1):
            for j in range(b):
                total = np.float32(0.0)
                for t in range(len(levels)):
                    total += value[t, j]
                mean[j] = total * np.float32(1.0 / n_s)
            for s in range(n_s):
                for a in range(n_a):
                    if shared:
                        posted = np.float32(offers[0, h, s, a])
                        for j in range(b):
                            offered[a, j] = posted
                    else:
                        for j in range(b):
                            offered[a, j] = offers[groups[lo + j], h, s, a]
                plan = policy[h, s, rows]
                for j in range(b):
                    top, choice = np.float32(0.0), np.int8(0)
                    for a in range(len(choices)):
                        expected = reward[s, a, j] + offered[a, j] + untried[s, a, j] * mean[j]
                        for t in range(len(levels)):
                            expected += prob[s, a, t, j] * value[t, j]
                        if a == 0 or expected > top:
                            top, choice = expected, np.int8(a)
                    new_value[s, j] = top
                    plan[j] = choice
            for t in range(n_s):
                for j in range(b):
                    value[t, j] = new_value[t, j]

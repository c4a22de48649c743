"""The memory a model will need, estimated from its sizes before its large tables are allocated, so
that a model or a run too large for this machine is refused in one line rather than failing part-way.

The estimate counts what grows with the sizes, in bytes: per agent, its Mesa handle, the model's
arrays and its learner's tables; per principal, the institution's counts; once, the exact local
model; per link of the graph, the Mesa network the agents are placed on; and per step, the collected
data. It is a close estimate, not an upper bound: it refuses what cannot fit, not what might not.
"""

from __future__ import annotations

from market_abm.core.validation import check_memory
from market_abm.registry import LEARNERS

AGENT_BYTES = 2_000  # an agent's Mesa handle and its rows of the model's arrays
PLACED_LINK_BYTES = 640  # a link of the Mesa network (networkx graph and cells) the agents sit on
COLLECTED_BYTES = 40  # one number collected per step (a Python float in the DataCollector's lists)


def learner_bytes(learner, n_states, n_actions, horizon):
    """An agent's learner tables: the values and policies `(H + 1, S, A)` every learner keeps, and the
    transition counts `(S, A, S)` of a contract-aware one, which learns its own model."""
    cls = LEARNERS.get(learner) if isinstance(learner, str) else learner
    values = 16 * (horizon + 1) * n_states * n_actions
    return values + (4 * n_states * n_actions * n_states if getattr(cls, "contract_aware", False) else 0)


def check_agents(n_agents):
    """Refuse, before anything is built, more agents than their handles alone would fit in memory."""
    check_memory("n_agents", n_agents * AGENT_BYTES, f"{n_agents} agents")


def check_model_size(learner, n_agents, n_groups, n_states, n_actions, horizon, links=0, placed=False,
                     fields=("mdp", "mdp", "mdp")):
    """Refuse a model that would not fit in memory, naming what makes it too large: the decision
    problem (`fields` name its states, actions and steps), the number of agents, or the graph the
    agents are placed on (`links`, when `placed` on Mesa cells)."""
    s, a, h = n_states, n_actions, horizon
    problem = 16 * s * a * s  # the exact local model: transitions and their cumulative sums
    institution = 8 * (h + 1) * s * a * s  # a principal's transition counts, per step of an episode
    per_agent = AGENT_BYTES + learner_bytes(learner, s, a, h)
    sizes = dict(zip(fields, (s, a, h)))
    check_memory(max(sizes, key=sizes.get), problem + institution + per_agent,
                 f"a decision problem of {s} states, {a} actions and {h} steps")
    agents = problem + n_groups * institution + n_agents * per_agent
    check_memory("n_agents", agents, f"{n_agents} agents, each with {s} states, {a} actions and {h} steps")
    if placed:
        check_memory("graph", agents + links * PLACED_LINK_BYTES, f"placing {n_agents} agents on a graph of "
                                                                   f"{links} links")


def check_environment_size(learner, env, placed):
    """`check_model_size` for a scenario's environment on its graph, if it has one (its `size_fields`
    name the parameters that set its states, actions and steps)."""
    topology = getattr(env, "topology", None)
    links = 0 if topology is None else topology.adjacency.nnz // 2
    check_model_size(learner, env.n_agents, env.n_groups, env.n_states, env.n_actions, env.horizon, links,
                     placed, env.size_fields)


def check_run_length(model, name, steps):
    """Refuse a run of `steps` steps whose collected data would not fit in memory (`name` is the field
    that set its length): every model-level reporter, every episode's record and agent snapshots."""
    env = model.env
    # a continuing market collects once per review period, and snapshots every so many reviews
    episodes = steps // (env.review_every if model.continuing else env.horizon) + 1
    collected = episodes if model.continuing else steps
    per_step = COLLECTED_BYTES * len(model.datacollector.model_reporters)
    per_episode = COLLECTED_BYTES * 8 + (8 * env.n_agents if env.welfare_is_exact else 0)
    snapshots = collected // model.agent_snapshot_every if model.agent_snapshot_every else 0
    needed = collected * per_step + episodes * per_episode + snapshots * env.n_agents * 40
    check_memory(name, needed, f"the data collected over {steps} steps")

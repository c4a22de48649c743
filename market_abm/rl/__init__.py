"""Bring-your-own learner: the model as a PettingZoo `ParallelEnv` (needs the `rl` extra).

    from market_abm.rl import parallel_env
    env = parallel_env(scenario="pollution", n_agents=8, graph="ring", mechanism="two_phase", rng=0)
    observations, infos = env.reset()
"""

from market_abm.rl.env import MarketParallelEnv, parallel_env
from market_abm.rl.external import ExternalLearner

__all__ = ["ExternalLearner", "MarketParallelEnv", "parallel_env"]

"""market_abm: principals and learning agents with stateful externalities, on Mesa.

A model-level institution runs a two-phase incentive mechanism: it first estimates the minimal
transfers that make learners take a target action, then uses them to steer the learners toward
welfare-optimal behaviour. The package measures how well that works (welfare regret, gap closed).
"""

__version__ = "0.1.0"

from market_abm.model import MarketModel  # noqa: E402
from market_abm.batch import load_dataset  # noqa: E402

__all__ = ["MarketModel", "__version__", "load_dataset"]

"""Loops over agents compiled to machine code (numba), for the hot paths of a step.

numpy makes one pass over memory, with a temporary and a few microseconds of call overhead, per
operation; a kernel does one stage of a step for every agent in a single call, without temporaries
(and, where a loop would otherwise wait on memory shared across agents, in separate passes).
Kernels take and return plain numpy arrays, are cached on disk after their first compilation, and
use numpy's floating-point error model (no Python exceptions inside loops).
"""

from __future__ import annotations

import numpy as np
from numba import njit

compiled = njit(cache=True, nogil=True, error_model="numpy")
inlined = njit(cache=True, nogil=True, error_model="numpy", inline="always")  # small helpers of kernels
LANES = 8  # copies a counting loop spreads consecutive agents over, so few hot cells do not serialise it


@compiled
def lane_sums(index, weights, size):
    """Sums of `weights[i]` (of ones if `weights` is None) by `index[i]`, as `(size,)` floats: a compiled
    bincount. Most agents share a few cells, so consecutive agents add to separate lanes rather than
    wait on each other's update of the same cell."""
    lanes = np.zeros((LANES, size))
    if weights is None:
        for i in range(index.shape[0]):
            lanes[i % LANES, index[i]] += 1.0
    else:
        for i in range(index.shape[0]):
            lanes[i % LANES, index[i]] += weights[i]
    total = np.zeros(size)
    for lane in range(LANES):
        total += lanes[lane]
    return total

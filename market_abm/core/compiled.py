"""Loops over agents compiled to machine code (numba), for the hot paths of a step.

numpy makes one pass over memory, with a temporary and a few microseconds of call overhead, per
operation; a kernel does one stage of a step for every agent in a single call, without temporaries
(and, where a loop would otherwise wait on memory shared across agents, in separate passes).
Kernels take and return plain numpy arrays, are cached on disk after their first compilation, and
use numpy's floating-point error model (no Python exceptions inside loops).
"""

from __future__ import annotations

from numba import njit

compiled = njit(cache=True, nogil=True, error_model="numpy")
inlined = njit(cache=True, nogil=True, error_model="numpy", inline="always")  # small helpers of kernels
LANES = 8  # copies a counting loop spreads consecutive agents over, so few hot cells do not serialise it

"""Loops over agents compiled to machine code (numba), for the hot paths of a step.

A step touches every agent a handful of times; numpy would spend one pass over memory (and a few
microseconds of call overhead) per operation, a compiled loop does all of an agent's work in one.
Kernels take and return plain numpy arrays, are cached on disk after their first compilation, and
use numpy's floating-point error model (no Python exceptions inside loops).
"""

from __future__ import annotations

from numba import njit

compiled = njit(cache=True, nogil=True, error_model="numpy")
inlined = njit(cache=True, nogil=True, error_model="numpy", inline="always")  # small helpers of kernels
LANES = 8  # copies a counting loop spreads consecutive agents over, so few hot cells do not serialise it

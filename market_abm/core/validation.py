"""Input checks that raise a one-line `ValueError` naming the offending field."""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-9


def check_array(name, value, shape=None, ndim=None):
    """`value` as a finite float array of the given shape (or number of axes)."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be numeric") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: must have {ndim} axes, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name}: shape {arr.shape} must be {tuple(shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or inf")
    return arr


def check_distribution(name, probs):
    """Every row over the last axis is a probability distribution (tolerance 1e-9)."""
    if np.any(probs < -TOLERANCE):
        raise ValueError(f"{name}: probabilities must be >= 0")
    if np.any(np.abs(probs.sum(axis=-1) - 1.0) > TOLERANCE):
        raise ValueError(f"{name}: probabilities must sum to 1 over the last axis")


def check_int(name, value, low=None, high=None):
    """`value` as an int within `[low, high]`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}: must be {bounds}, got {value}")
    return int(value)


def check_number(name, value, low=None, high=None, low_open=False):
    """`value` as a finite float within bounds (`low_open` excludes `low`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name}: must be <= {high}, got {value}")
    return value


def check_range(name, value):
    """`value` as a pair of finite floats `(low, high)` with `low < high`."""
    if isinstance(value, (str, bytes)) or np.ndim(value) != 1 or len(value) != 2:
        raise ValueError(f"{name}: must be a pair (low, high), got {value!r}")
    low, high = (check_number(name, v) for v in value)
    if not low < high:
        raise ValueError(f"{name}: low must be below high, got {value!r}")
    return low, high


def check_choice(name, value, choices):
    """`value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name}: must be one of {sorted(choices)}, got {value!r}")
    return value

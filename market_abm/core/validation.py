"""Input checks that raise a one-line `ValueError` naming the offending field."""

from __future__ import annotations

import dataclasses
import inspect
import os
import types
import typing
from pathlib import Path

import numpy as np

TOLERANCE = 1e-9
MAX_COUNT = 2**63 - 1  # the largest count or seed: one that fits a 64-bit integer column


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


def check_bool(name, value):
    """`value` is a boolean: a string such as "false" or a number is refused, not read as one."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: must be true or false, got {value!r}")
    return bool(value)


def check_seed(name, value):
    """A seed for `numpy.random.default_rng`: None, an integer in `[0, MAX_COUNT]`, or a numpy
    `Generator`, `BitGenerator` or `SeedSequence`."""
    if value is None or isinstance(value, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: must be an integer seed >= 0 or a numpy Generator, got {value!r}")
    if not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{name}: must be a seed in [0, 2**63 - 1], got {value}")
    return int(value)


def check_mapping(name, value):
    """Keyword parameters: None (none) or a dict with string keys; returns a new dict."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name}: must be a dict of parameters, got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"{name}: parameter names must be strings, got {key!r}")
    return dict(value)


def check_keywords(name, params, function, given=(), owner=None):
    """`params` are keyword arguments that `function` (a class or a function) takes, read from its
    signature: none of them is one the caller sets itself (`given`), each is a parameter of `function`
    (any is, if it takes `**kwargs`), and each whose default is a boolean is a boolean. `owner` names
    `function` in the messages."""
    params = check_mapping(name, params)
    owner = repr(owner if owner is not None else getattr(function, "__name__", function))
    parameters = inspect.signature(function).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    accepted = [key for key, p in parameters.items()
                if key not in given and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, value in params.items():
        if key in given:
            raise ValueError(f"{name}: {key!r} is set by the model, not a parameter of {owner}")
        if key not in accepted and not open_ended:
            takes = f"; it takes {', '.join(accepted)}" if accepted else "; it takes no parameters"
            raise ValueError(f"{name}: {owner} takes no parameter {key!r}{takes}")
        if key in parameters and isinstance(parameters[key].default, bool):
            check_bool(key, value)
    return params


def check_fields(name, cls, params):
    """Keyword arguments for the dataclass `cls`: each names one of its fields and has the field's
    annotated type (booleans, integers, numbers, strings, and tuples given as lists, whose items are
    of the kind of the default's). Returns them with lists as tuples."""
    params = check_mapping(name, params)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    checked = {}
    for key, value in params.items():
        if key not in fields:
            raise ValueError(f"{name}: unknown parameter {key!r}; {cls.__name__} has {', '.join(fields)}")
        checked[key] = check_typed(key, value, hints.get(key), fields[key].default)
    return checked


def check_typed(name, value, hint, default=None):
    """`value` as the type `hint` says (`bool`, `int`, `float`, `str`, `tuple`, or one of them `| None`)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    kind = next((option for option in options if option is not type(None)), None)
    if kind is bool:
        return check_bool(name, value)
    if kind is int:
        return check_int(name, value)
    if kind is float:
        return check_number(name, value)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: must be a string, got {value!r}")
        return value
    if kind is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: must be a list, got {value!r}")
        item = type(default[0]) if isinstance(default, tuple) and default else float
        return tuple(check_typed(name, v, item) for v in value)
    return value


def machine_memory():
    """Bytes of memory this process may use: the machine's physical memory, or the smaller limit of
    its control group (None if neither can be read)."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        pass
    try:
        limits.append(int(Path("/sys/fs/cgroup/memory.max").read_text()))
    except (OSError, ValueError):  # absent, or "max": no limit of its own
        pass
    return min(limits) if limits else None


def check_memory(name, needed, what):
    """Refuse, before anything is allocated, what would need `needed` bytes (`what` says of what)
    when that is more than `machine_memory()`."""
    available = machine_memory()
    if available is not None and needed > available:
        raise ValueError(f"{name}: {what} would need about {size_text(needed)} of memory, more than the "
                         f"{size_text(available)} of this machine")


def size_text(nbytes):
    """Bytes as a short text: `1.5 GB`, `7.3 TB`."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.3g} {unit}" if unit != "bytes" else f"{int(nbytes)} bytes"
        nbytes /= 1000

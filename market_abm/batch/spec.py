"""A sweep specification: one TOML file naming the scenario, the steps per run, the seeds, fixed
`MarketModel` parameters, and an optional `[grid]` of lists whose product is swept.

    scenario = "pollution"          # a registered scenario (or swept in [grid])
    steps = 600                     # time steps per run, >= 1
    seeds = [0, 1, 2, 3]            # every grid point runs once per seed
    n_agents = 16                   # fixed MarketModel keywords: n_agents, graph, mechanism,
    graph = "ring"                  #   scheme, learner (the CLI `run` calls n_agents --agents)
    [scenario_params]               # tables passed as graph_params, scenario_params,
    damage_share = 0.25             #   learner_params, mechanism_params
    [grid]                          # lists; the sweep is their product x seeds
    mechanism = ["none", "two_phase"]
    scenario_params.decay = [0.2, 0.3]

The whole spec is checked before anything is written: every key, type and range, the number of
runs (at most `MAX_RUNS` unless the caller raises it, counted before any grid point is built), and
every grid point is built once (without its welfare benchmarks) so that scenario and graph
parameters, the model's size and its run's data fail here, as a one-line `ValueError` naming the
field, rather than half-way through a sweep.

The default learner is `contract_aware`; a continuing market (pricing) names one that learns it,
`learner = "calvano_q"`, and its `steps` are periods (its data come one row per review period).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from market_abm.core.validation import check_int
from market_abm.environments.graphs import graph_file
from market_abm.registry import KINDS, takes_scheme

SCALARS = ("scenario", "n_agents", "graph", "mechanism", "scheme", "learner")
TABLES = ("graph_params", "scenario_params", "learner_params", "mechanism_params")
SETTINGS = ("steps", "seeds", "description", "grid")
MAX_RUNS = 10_000  # runs a spec may have unless the caller raises the limit
DEFAULTS = {"n_agents": 1, "graph": "watts_strogatz", "mechanism": "two_phase", "scheme": "fine",
            "learner": "contract_aware"}


@dataclass(frozen=True)
class Run:
    """One run of a sweep: `MarketModel(**model_params, rng=seed).run_steps(steps)`.

    Attributes:
        run_id: a stable hash of (params, seed), the run's file name and its key on resume.
        params: every MarketModel keyword (defaults filled in) plus `steps`.
        seed: the model's seed.
        labels: the dataset's parameter columns: the scalar parameters and any swept table entry
            (as `table.key`).
    """

    run_id: str
    params: dict
    seed: int
    labels: dict

    def task(self):
        """The run as plain data, for a worker process or a Dask worker."""
        return {"run_id": self.run_id, "params": self.params, "seed": self.seed, "labels": self.labels}


def run_id(params, seed):
    """A stable 16-hex-digit hash of a run's parameters and seed."""
    text = json.dumps({"params": params, "seed": seed}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep specification.

    Attributes:
        data: the parsed TOML, as written (recorded in the manifest).
        text: the TOML text; `source` names where it came from (for messages).
        steps, seeds: time steps per run and the seeds.
        fixed: the fixed MarketModel keywords (defaults filled in).
        grid: swept values by dotted key (`mechanism`, `scenario_params.decay`), in file order.
    """

    data: dict
    text: str
    source: str
    steps: int
    seeds: tuple
    fixed: dict
    grid: dict

    def runs(self):
        """Every run: the grid's product (in file order), each once per seed; points that differ only in
        the scheme of a mechanism that takes none are one run."""
        runs = []
        for point in grid_points(self.grid):
            params = apply_point(self.fixed, point)
            params["steps"] = self.steps
            labels = {key: params[key] for key in SCALARS}
            labels.update({key: label_value(value) for key, value in sorted(point.items()) if "." in key})
            runs.extend(Run(run_id(params, seed), params, seed, labels) for seed in self.seeds)
        return list({run.run_id: run for run in runs}.values())

    @property
    def swept(self):
        """The swept keys (dataset columns beyond the scalar parameters are the swept table entries)."""
        return list(self.grid)


def grid_points(grid):
    """Every combination of grid values, as `{dotted key: value}`, first key slowest."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*grid.values())]


def apply_point(fixed, point):
    """The fixed parameters with one grid point's values set (deep copies of the tables); the scheme
    is None for a mechanism that takes none."""
    params = {key: dict(value) if key in TABLES else value for key, value in fixed.items()}
    for key, value in point.items():
        table, _, entry = key.partition(".")
        if entry:
            params[table][entry] = value
        else:
            params[key] = value
    if params["mechanism"] in KINDS["mechanism"] and not takes_scheme(params["mechanism"]):
        params["scheme"] = None  # a mechanism without a scheme is one run, whatever schemes the grid lists
    return params


def label_value(value):
    """A swept table value as a dataset cell: scalars as they are, lists and tables as JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def load_spec(path, max_runs=MAX_RUNS, progress=False):
    """Read and validate a sweep spec file; bad input is a one-line `ValueError` naming the field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"spec: cannot read {os.fspath(path)!r}: {err.strerror}") from None
    return parse_spec(text, source=path.name, max_runs=max_runs, progress=progress)


def parse_spec(text, source="spec", max_runs=MAX_RUNS, progress=False):
    """Parse and validate TOML text into a `SweepSpec` (see the module docstring for the keys): a spec of
    more than `max_runs` runs is refused before its grid points are checked (with a progress bar, if
    `progress`, when that takes a while)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{source}: malformed TOML: {err}") from None
    try:
        spec = validate(data, text, source, check_int("max_runs", max_runs, low=1))
        check_models(spec, progress)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    return spec


def validate(data, text, source, max_runs=MAX_RUNS):
    """Check every key, type and range of the parsed spec, and its number of runs; returns the `SweepSpec`."""
    known = SETTINGS + SCALARS + TABLES
    for key in data:
        if key not in known:
            raise ValueError(f"{key}: unknown key{hint(key, known)}")
    if "steps" not in data:
        raise ValueError("steps: required (time steps per run)")
    steps = check_int("steps", data["steps"], low=1)
    seeds = check_seeds(data.get("seeds"))
    if not isinstance(data.get("description", ""), str):
        raise ValueError("description: must be a string")
    fixed = {key: check_scalar(key, data[key]) for key in SCALARS if key in data}
    for key in TABLES:
        fixed[key] = check_table(key, data.get(key, {}))
    grid = check_grid(data.get("grid", {}), fixed)
    if "scenario" not in fixed and "scenario" not in grid:
        raise ValueError("scenario: required (one of " + ", ".join(sorted(KINDS["scenario"])) + ")")
    check_run_count(grid, seeds, max_runs)
    fixed = {**DEFAULTS, **fixed}
    return SweepSpec(data, text, source, steps, tuple(seeds), fixed, grid)


def check_run_count(grid, seeds, max_runs):
    """The grid's points times the seeds are at most `max_runs` runs."""
    points = math.prod(len(values) for values in grid.values())
    if points * len(seeds) > max_runs:
        field = "grid" if points > 1 else "seeds"
        raise ValueError(f"{field}: {points} grid point{'s' * (points > 1)} x {len(seeds)} seed{'s' * (len(seeds) > 1)} "
                         f"make {points * len(seeds)} runs, more than the limit of {max_runs}; raise it with "
                         "--max-runs (max_runs= in Python)")


def check_seeds(seeds):
    if seeds is None:
        raise ValueError("seeds: required (a non-empty list of integers >= 0)")
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"seeds: must be a non-empty list of integers >= 0, got {seeds!r}")
    seen = set()
    for i, seed in enumerate(seeds):
        check_int(f"seeds[{i}]", seed, low=0)
        if seed in seen:
            raise ValueError(f"seeds: {seed} appears twice")
        seen.add(seed)
    return seeds


def check_scalar(name, value):
    """One scalar MarketModel keyword: its type, and a registered name where there is a registry."""
    key = name.rpartition(".")[2].partition("[")[0]
    if key == "n_agents":
        return check_int(name, value, low=1)
    if not isinstance(value, str):
        raise ValueError(f"{name}: must be a string, got {value!r}")
    choices = KINDS[key]
    if value not in choices and not (key == "graph" and graph_file(value) is not None):
        extra = " or an edge-list file given as a path (./name, or a name with an extension)" if key == "graph" else ""
        raise ValueError(f"{name}: must be one of {sorted(choices)}{extra}, got {value!r}")
    return value


def check_table(name, table):
    """A parameter table: a TOML table of plain values (numbers, strings, booleans, lists, tables)."""
    if not isinstance(table, dict):
        raise ValueError(f"{name}: must be a table, got {table!r}")
    for key, value in table.items():
        check_plain(f"{name}.{key}", value)
    return dict(table)


def check_plain(name, value):
    if isinstance(value, dict):
        for key, item in value.items():
            check_plain(f"{name}.{key}", item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_plain(f"{name}[{i}]", item)
    elif not isinstance(value, (str, int, float, bool)):
        raise ValueError(f"{name}: dates and times are not model parameters, got {value!r}")


def check_grid(grid, fixed):
    """The `[grid]` table: non-empty lists of distinct values for scalar keys and table entries."""
    if not isinstance(grid, dict):
        raise ValueError(f"grid: must be a table of lists, got {grid!r}")
    flat = {}
    for key, value in grid.items():
        if key in TABLES:
            if not isinstance(value, dict):
                raise ValueError(f"grid.{key}: must be a table of lists, e.g. grid.{key}.name = [1, 2]")
            for entry, values in value.items():
                name = f"{key}.{entry}"
                flat[name] = check_values(f"grid.{name}", values, lambda n, v: check_plain(n, v) or v)
                if entry in fixed[key]:
                    raise ValueError(f"grid.{name}: also set as a fixed parameter in [{key}]")
        elif key in SCALARS:
            flat[key] = check_values(f"grid.{key}", value, check_scalar)
            if key in fixed:
                raise ValueError(f"grid.{key}: also set as a fixed parameter")
        else:
            raise ValueError(f"grid.{key}: unknown parameter{hint(key, SCALARS + TABLES)}")
    return flat


def check_values(name, values, check):
    if not isinstance(values, list) or not values:
        raise ValueError(f"{name}: must be a non-empty list, got {values!r}")
    checked = [check(f"{name}[{i}]", value) for i, value in enumerate(values)]
    seen = set()
    for value in checked:
        key = (type(value).__name__, json.dumps(value, sort_keys=True))
        if key in seen:
            raise ValueError(f"{name}: {value!r} appears twice")
        seen.add(key)
    return checked


def check_models(spec, progress=False):
    """Build every grid point's model once (first seed, no welfare benchmarks, nothing written), so
    that scenario, graph, learner and mechanism parameters, the model's size and the data its run will
    collect are checked before the sweep starts."""
    from tqdm.auto import tqdm

    from market_abm.memory import check_run_length
    from market_abm.model import MarketModel

    points = tqdm(grid_points(spec.grid), desc="checking the grid", unit="point", delay=2, leave=False,
                  disable=not progress)
    for point in points:
        params = apply_point(spec.fixed, point)
        where = ", ".join(f"{k}={v!r}" for k, v in point.items())
        prefix = f"grid point {where}: " if where else ""
        try:
            model = MarketModel(**params, rng=spec.seeds[0], benchmark=False)
            check_run_length(model, "steps", spec.steps)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{prefix}{in_table(params, one_line(err))}") from None


def one_line(err):
    return " ".join(str(err).split()) or type(err).__name__


def in_table(params, message):
    """Name the table of a parameter the model complained about (`decay: ...` -> `scenario_params.decay: ...`)."""
    field = message.partition(":")[0]
    tables = [table for table in TABLES if field in params[table]]
    return f"{tables[0]}.{message}" if len(tables) == 1 else message


def hint(key, known):
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; expected one of {', '.join(known)}"

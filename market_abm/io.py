"""Atomic writes: a file appears whole under its final name or not at all."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def atomic_write(path, write):
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file would be, not mkstemp's 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_parquet(frame, path):
    """A pandas frame as Parquet, atomically."""
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_json(data, path):
    """A dict as JSON (NaN and inf as null), atomically."""
    text = json.dumps(jsonable(data), indent=2, sort_keys=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def jsonable(value):
    """Plain JSON values: numpy scalars to Python, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item() if getattr(value, "ndim", 0) == 0 else value.tolist()
        return jsonable(value) if isinstance(value, list) else jsonable_scalar(value)
    return jsonable_scalar(value)


def jsonable_scalar(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def markdown_table(table):
    """A frame as a GitHub Markdown table (numbers to 4 significant digits)."""
    return table.to_markdown(floatfmt=".4g") + "\n"


def write_table(table, out, name):
    """A results table as `out/name.csv` and `out/name.md`, atomically; returns the Markdown."""
    markdown = markdown_table(table)
    atomic_write(Path(out) / f"{name}.csv", lambda tmp: table.to_csv(tmp))
    atomic_write(Path(out) / f"{name}.md", lambda tmp: Path(tmp).write_text(markdown))
    return markdown

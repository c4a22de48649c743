"""Atomic writes: a file, or a whole folder, appears complete under its final name or not at all."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import secrets
import shutil
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


@contextlib.contextmanager
def atomic_folder(path, overwrite=False):
    """Yield a new temporary folder beside `path` to write into; when the block completes, rename it to
    `path` whole, replacing an earlier folder there only if `overwrite`. If the block fails or the
    process dies, `path` is left as it was; a dead process's hidden `.<name>.<pid>-<token>.tmp` folder
    is removed by the next write to `path`."""
    path = Path(os.path.abspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_folders(path)
    tmp = hidden_folder(path)
    tmp.mkdir()
    try:
        yield tmp
        replace_folder(tmp, path, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def hidden_folder(path):
    """A fresh hidden name beside `path` that says which process made it."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def replace_folder(tmp, path, overwrite):
    """Rename folder `tmp` to `path`: into a free name (or an empty folder) at once; over an earlier folder
    only if `overwrite`, which moves the old one aside first and then deletes it."""
    try:
        os.rename(tmp, path)
        return
    except OSError:
        if not (overwrite and path.is_dir()):
            raise ValueError(f"out: {os.fspath(path)!r} is not empty (written meanwhile?); give --overwrite "
                             "to replace it") from None
    old = hidden_folder(path)
    os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_folders(path):
    """Remove the hidden temporary folders beside `path` left by processes that no longer run."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[0-9a-f]+\.tmp")
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_dir() and not process_alive(int(match.group(1))):
            shutil.rmtree(candidate, ignore_errors=True)


def process_alive(pid):
    """Whether a process with id `pid` runs on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def check_folder_path(name, folder):
    """`folder` can be made or replaced: it is not a file, does not lie under one, and the nearest
    folder that exists above it is writable. Nothing is written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name}: {os.fspath(folder)!r} is a file, not a folder")
    above = next((parent for parent in Path(os.path.abspath(folder)).parents if parent.exists()), None)
    if above is None:
        raise ValueError(f"{name}: {os.fspath(folder)!r} is the root folder")
    if not above.is_dir():
        raise ValueError(f"{name}: {os.fspath(folder)!r} lies under the file {os.fspath(above)!r}")
    if not os.access(above, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write in {os.fspath(above)!r}")


def write_parquet(frame, path):
    """A pandas frame as Parquet, atomically."""
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def read_folder_json(folder, name, what):
    """The JSON file `name` of `folder`, and its path; a one-line `ValueError` on the `dir` field if the
    folder holds no such file (it then holds no `what`) or the file cannot be read."""
    path = Path(folder) / name
    try:
        return json.loads(path.read_text()), path
    except FileNotFoundError:
        raise ValueError(f"dir: no {what} in {os.fspath(folder)!r} (no {name})") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"dir: cannot read {os.fspath(path)!r}: {' '.join(str(err).split())}") from None


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
    """A frame as a GitHub Markdown table (numbers to 4 significant digits); a named index, or the levels
    of a multi-index, become the first columns, and an unnamed one is left out."""
    if table.index.nlevels > 1 or table.index.name is not None:
        table = table.reset_index()
    return table.to_markdown(index=False, floatfmt=".4g") + "\n"


def write_table(table, out, name):
    """A results table as `out/name.csv` and `out/name.md`, atomically; returns the Markdown."""
    markdown = markdown_table(table)
    atomic_write(Path(out) / f"{name}.csv", lambda tmp: table.to_csv(tmp))
    atomic_write(Path(out) / f"{name}.md", lambda tmp: Path(tmp).write_text(markdown))
    return markdown

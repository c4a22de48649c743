"""The package as a user installs it: a wheel built offline from the sources, installed into a fresh
venv and run from a folder outside the checkout, serves the visualizer with `market-abm viz`.

The fresh venv holds the wheel alone; its dependencies come from this environment: its
site-packages, added as a plain path, so that the editable checkout's import hook there is not run,
and the data files they install beside it (Jupyter's extension configuration and scripts, which the
Solara server reads from the venv's prefix).
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest
from browser_support import SolaraServer

from market_abm.visualization import APP

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "market_abm")  # what the wheel is built from
DATA_FILES = ("etc/jupyter", "share/jupyter")  # what the dependencies install under the prefix
OUTSIDE = {"PYTHONPATH": "", "HOST": "localhost", "SOLARA_HOST": "localhost"}  # nothing of the checkout


def run(*command, **kwargs):
    return subprocess.run([str(part) for part in command], check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The fresh venv, with the wheel of the sources installed in it."""
    tmp = tmp_path_factory.mktemp("wheel")
    sources, dist, env = tmp / "sources", tmp / "dist", tmp / "venv"
    sources.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, sources / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, sources / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist,
        sources)
    (wheel,) = dist.glob("market_abm-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", env)
    python = env / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    for name in DATA_FILES:
        if (Path(sys.prefix) / name).is_dir():
            (env / name).parent.mkdir(parents=True, exist_ok=True)
            (env / name).symlink_to(Path(sys.prefix) / name, target_is_directory=True)
    return env


def test_the_installed_copy_is_the_one_that_runs(installed, tmp_path):
    found = run(installed / "bin" / "python", "-c", f"import market_abm, {APP}; print(market_abm.__file__)",
                cwd=tmp_path, env={**os.environ, **OUTSIDE}).stdout.strip()
    assert Path(found).resolve().is_relative_to(installed.resolve()), found


def test_market_abm_viz_serves_the_page_from_the_installed_wheel(installed, tmp_path):
    server = SolaraServer(APP, tmp_path / "viz.log", cwd=tmp_path, env=OUTSIDE, host="localhost",
                          command=lambda port: [str(installed / "bin" / "market-abm"), "viz", "--port", str(port)])
    try:
        server.start(timeout=120)
        with urllib.request.urlopen(server.url, timeout=30) as response:
            assert response.status == 200
            assert "<html" in response.read().decode().lower()
    finally:
        server.stop()

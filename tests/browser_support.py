"""Helpers for end-to-end tests in headless Chromium: find the browser, serve a Solara app.

Locally a missing browser skips the test with the reason; under CI (`CI` set) it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# Playwright cannot download its own browser here: it drives Debian's chromium.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# Where the proxy would go on a cache miss: a closed loopback port, so a missing asset fails at
# once (and shows as "Could not load URL" in the server log) instead of reaching the network.
OFFLINE_CDN = "http://127.0.0.1:9/"


def in_ci() -> bool:
    """True when the `CI` environment variable is set (and not false/0)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> None:
    """Skip the test locally; fail it under CI, where the browser must be there."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so browser tests must run)", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    """Path of the system Chromium, or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def launch_chromium(playwright):
    """Launch headless system Chromium through Playwright."""
    executable = find_chromium()
    if executable is None:
        skip_or_fail("no Chromium found (apt-get install chromium, or run .ci/install_browser.sh)")
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SolaraServer:
    """`solara run <app>` (a script's path or a module's name) on a free loopback port, as a
    subprocess in its own process group; use as a context manager. `command(port)`, if given, is
    the command line that serves the page instead, on `host`.

    Attributes: `url`, `port`, `log_path` (server stdout and stderr), `process`.
    """

    def __init__(self, app: str | os.PathLike, log_path: str | os.PathLike, *, cache_dir=None,
                 offline: bool = True, production: bool = False, cwd=None, env: dict | None = None,
                 command=None, host: str = "127.0.0.1"):  # fmt: skip
        self.app = Path(app)
        self.log_path = Path(log_path)
        self.port = free_port()
        self.url = f"http://{host}:{self.port}/"
        self.cwd = Path(cwd) if cwd is not None else self.app.parent
        self.process: subprocess.Popen | None = None
        self.env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "false", "SOLARA_ASSETS_PROXY": "true",
                    "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}  # fmt: skip
        if cache_dir is not None:
            self.env["SOLARA_ASSETS_PROXY_CACHE_DIR"] = str(cache_dir)
        if offline:
            self.env["SOLARA_ASSETS_CDN"] = OFFLINE_CDN
        self.env.update(env or {})
        self.cmd = [sys.executable, "-m", "solara", "run", str(self.app), "--host", host,
                    "--port", str(self.port), "--no-open"] + (["--production"] if production else [])  # fmt: skip
        if command is not None:
            self.cmd = command(self.port)

    def start(self, timeout: float = 60.0) -> SolaraServer:
        """Start the server and wait until it serves the page."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)  # fmt: skip
        self.wait_until_serving(timeout)
        return self

    def wait_until_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"solara exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"solara did not serve {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (its own process group) and wait for it."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass

    def __enter__(self) -> SolaraServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def loopback_only(blocked):
    """A Playwright route handler that lets loopback requests through and aborts (and lists in
    `blocked`) every request that would leave the machine."""
    from urllib.parse import urlsplit

    def route(request_route):
        if (urlsplit(request_route.request.url).hostname or "") in ("127.0.0.1", "localhost", "::1"):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    return route

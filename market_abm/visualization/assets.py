"""Front-end assets for the Solara visualizer, so the page renders offline.

A Solara page loads its front end (Vue, Vuetify, require.js, the grid layout, vega for altair)
from a CDN through the Solara server's own proxy, which caches every file under
`<prefix>/share/solara/cdn/<package>@<version>/<path>` (`SOLARA_ASSETS_PROXY_CACHE_DIR` moves
it). `fetch_assets` fills that cache from the npm registry: it reads which packages the
installed Solara asks for, `npm pack`s each one and unpacks it as `<cache>/<name>@<spec>/`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path

__all__ = [
    "AssetFetchError",
    "NpmAsset",
    "default_cache_dir",
    "fetch_assets",
    "frontend_problems",
    "main_fetch_assets",
    "missing_assets",
    "required_assets",
]

# What Solara 1.64.1 and Mesa 3.5.1 were measured to load (server log, "Could not load URL").
# Used only for a package that the scan of the installed Solara no longer finds (a Solara
# release that moved its references somewhere the scan does not look).
MEASURED_ASSETS: dict[str, str] = {
    "@widgetti/solara-vuetify-app": "10.1.1",
    "requirejs": "2.3.6",
    "font-awesome": "4.5.0",
    "@widgetti/vue-grid-layout": "2.3.13-alpha.2",
    "mermaid": "10.8.0",
    "katex": "0.16.9",
    "vega": "5",
    "vega-lite": "5",
    "vega-embed": "6",
}
# The page shell for Vue 2 (ipyvue < 3) and for Vue 3; the template picks one on `vue3`.
_VUE2_APP = "@widgetti/solara-vuetify-app"
_VUE3_APP = "@widgetti/solara-vuetify3-app"

# `{{cdn}}/<name>@<spec>/<path>` in Jinja templates, `${this.getCdn()}/...` in Vue components.
_CDN_REF = re.compile(
    r"(?:\{\{\s*cdn\s*\}\}|\$\{\s*this\.getCdn\(\)\s*\})/"
    r"(?P<name>(?:@[\w.-]+/)?[\w.-]+)@(?P<spec>[^/\s\"'`]+)"
    r"(?P<path>/[^\s\"'`)]*)?"
)
# `fontawesome_path: str = "/font-awesome@4.5.0/css/..."` in solara/server/settings.py.
_SETTING_REF = re.compile(r"_path:\s*str\s*=\s*[\"']/(?P<name>[\w.-]+)@(?P<spec>[\w.-]+)(?P<path>/[^\"']*)[\"']")
_SCANNED_SUFFIXES = {".py", ".vue", ".j2", ".html", ".js"}
_SKIPPED_DIRS = {"website", "__pycache__", "test", "tests"}
_NPM_TIMEOUT_S = 300


class AssetFetchError(RuntimeError):
    """A front-end package could not be fetched or unpacked."""


@dataclass(frozen=True)
class NpmAsset:
    """One npm package the page loads: `name@spec` and the files Solara names in it."""

    name: str
    spec: str
    files: tuple[str, ...] = field(default=())

    @property
    def dirname(self) -> str:
        """Folder under the cache dir: the URL path the page requests."""
        return f"{self.name}@{self.spec}"

    def is_present(self, cache_dir: Path) -> bool:
        """Unpacked completely (package.json is moved in last) with every named file."""
        root = Path(cache_dir) / self.dirname
        return (root / "package.json").is_file() and all((root / f).is_file() for f in self.files)


def _major(dist: str) -> int | None:
    try:
        return int(metadata.version(dist).split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


def _solara_dir() -> Path:
    spec = util.find_spec("solara")
    if spec is None or not spec.submodule_search_locations:
        raise AssetFetchError("solara is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _scan_solara(solara_dir: Path) -> dict[tuple[str, str], set[str]]:
    """Every `name@spec` (with the files named in it) that Solara's sources load from the CDN."""
    found: dict[tuple[str, str], set[str]] = {}
    for root, dirs, files in os.walk(solara_dir):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        for fname in files:
            if Path(fname).suffix not in _SCANNED_SUFFIXES:
                continue
            text = (Path(root) / fname).read_text(encoding="utf-8", errors="replace")
            for regex in (_CDN_REF, _SETTING_REF):
                for m in regex.finditer(text):
                    name, spec, path = m["name"], m["spec"], (m["path"] or "").lstrip("/")
                    if "$" in name or "$" in spec or "{" in spec:
                        continue  # version chosen at run time (codemirror, echarts, milkdown)
                    files_in = found.setdefault((name, spec), set())
                    if path and "$" not in path:
                        files_in.add(path)
    return found


def required_assets() -> list[NpmAsset]:
    """The npm packages the installed Solara page loads, derived from Solara's own sources.

    Template variables are resolved as the server does (`ipywidget_major_version` from
    ipywidgets, Vue 2 or 3 from ipyvue). Falls back to `MEASURED_ASSETS` for what the scan
    does not find.
    """
    ipywidgets_major = _major("ipywidgets") or 8
    vue3 = (_major("ipyvue") or 1) >= 3
    found = _scan_solara(_solara_dir())
    assets: dict[str, NpmAsset] = {}
    for (name, spec), paths in sorted(found.items()):
        if name == (_VUE2_APP if vue3 else _VUE3_APP):
            continue  # the template loads one page shell only
        files = tuple(sorted(p.replace("{{ipywidget_major_version}}", str(ipywidgets_major)) for p in paths))
        if any("{{" in f for f in files):
            files = tuple(f for f in files if "{{" not in f)
        assets[name] = NpmAsset(name, spec, files)
    for name, spec in MEASURED_ASSETS.items():
        if name == _VUE2_APP and vue3:
            continue
        assets.setdefault(name, NpmAsset(name, spec))
    return list(assets.values())


def default_cache_dir() -> Path:
    """The Solara server's CDN proxy cache (honours `SOLARA_ASSETS_PROXY_CACHE_DIR`)."""
    from solara.server import settings

    return Path(settings.assets.proxy_cache_dir)


def missing_assets(cache_dir: str | os.PathLike | None = None) -> list[NpmAsset]:
    """The required packages not (completely) present in the cache."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return [a for a in required_assets() if not a.is_present(cache)]


def frontend_problems() -> list[str]:
    """Installed widget versions known to break the page (Mesa's grid needs ipyvuetify < 3)."""
    problems = []
    for dist in ("ipyvuetify", "ipyvue"):
        major = _major(dist)
        if major is not None and major >= 3:
            problems.append(f"{dist} {metadata.version(dist)} is installed; the page needs {dist}<3 (pip install '{dist}<3')")
    return problems


def _npm_error(proc: subprocess.CompletedProcess) -> str:
    """One line from a failed `npm pack --json` (its error goes to stdout as JSON)."""
    try:
        err = json.loads(proc.stdout)["error"]
        return f"{err.get('code', 'error')}: {err.get('summary', '')}".strip()
    except (ValueError, LookupError, TypeError):
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        lines = [ln for ln in lines if "Unknown user config" not in ln]
        return next((ln for ln in lines if "ERR" in ln), lines[-1] if lines else f"exit code {proc.returncode}")


def _npm_pack(asset: NpmAsset, dest: Path) -> Path:
    """Download `asset` with `npm pack` into `dest`; return the tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise AssetFetchError(f"npm not found on PATH; it is needed to fetch {asset.dirname}")
    cmd = [npm, "pack", f"{asset.name}@{asset.spec}", "--json", "--silent", "--pack-destination", str(dest),
           "--fetch-retries=2", "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=10000",
           "--fetch-timeout=60000"]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_NPM_TIMEOUT_S, cwd=dest)
    except subprocess.TimeoutExpired:
        raise AssetFetchError(f"npm pack {asset.dirname} timed out after {_NPM_TIMEOUT_S} s (registry unreachable?)") from None
    if proc.returncode != 0:
        raise AssetFetchError(f"npm pack {asset.dirname} failed: {_npm_error(proc)}")
    try:
        filename = json.loads(proc.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        tarballs = sorted(dest.glob("*.tgz"))
        if len(tarballs) != 1:
            raise AssetFetchError(f"npm pack {asset.dirname} gave no tarball") from None
        return tarballs[0]
    # npm names scoped tarballs "scope-name-1.0.0.tgz" but reports "@scope/name-1.0.0.tgz" in some versions
    path = dest / filename.lstrip("@").replace("/", "-")
    return path if path.exists() else next(iter(sorted(dest.glob("*.tgz"))), path)


def _unpack(asset: NpmAsset, tarball: Path, staging: Path) -> Path:
    """Unpack the tarball into `staging`; return the package's root folder."""
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise AssetFetchError(f"could not unpack {asset.dirname}: {e}") from None
    tops = [p for p in staging.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise AssetFetchError(f"could not unpack {asset.dirname}: expected one top folder, found {len(tops)}")
    root = tops[0]
    for rel in asset.files:
        # the CDN minifies on demand (e.g. requirejs@2.3.6/require.min.js); serve the plain file
        target = root / rel
        plain = target.with_name(target.name.replace(".min.", "."))
        if not target.exists() and plain != target and plain.is_file():
            shutil.copyfile(plain, target)
    missing = [rel for rel in asset.files if not (root / rel).is_file()]
    if missing:
        raise AssetFetchError(f"{asset.dirname} has no {missing[0]}")
    if not (root / "package.json").is_file():
        raise AssetFetchError(f"{asset.dirname} has no package.json")
    return root


def _install(root: Path, target: Path) -> None:
    """Move an unpacked package into place atomically; package.json goes last."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(root, target)  # atomic when the folder is new
        return
    except OSError:
        if not target.is_dir():
            raise
    # The folder exists (e.g. files the proxy fetched itself): add what is missing file by file.
    manifest = root / "package.json"
    for src in sorted(p for p in root.rglob("*") if not p.is_dir() and p != manifest) + [manifest]:
        dst = target / src.relative_to(root)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)


def _fetch_one(asset: NpmAsset, cache: Path) -> None:
    staging_parent = (cache / asset.dirname).parent
    staging_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=staging_parent) as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "pack").mkdir()
        (tmp_path / "unpack").mkdir()
        tarball = _npm_pack(asset, tmp_path / "pack")
        root = _unpack(asset, tarball, tmp_path / "unpack")
        _install(root, cache / asset.dirname)


def fetch_assets(cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Fill the Solara CDN proxy cache from the npm registry; skip what is present.

    Returns the cache dir. Raises `AssetFetchError` (one line, naming the package) when
    npm is missing or a package cannot be fetched.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    todo = [a for a in required_assets() if not a.is_present(cache)]
    if not todo:
        return cache
    from tqdm.auto import tqdm

    with tqdm(todo, desc="solara assets", unit="pkg", disable=not progress, file=sys.stderr) as bar:
        for asset in bar:
            bar.set_postfix_str(asset.dirname)
            _fetch_one(asset, cache)
    return cache


def main_fetch_assets(cache_dir: str | os.PathLike | None = None) -> int:
    """CLI entry (`market-abm viz --fetch-assets`): fetch, report, return an exit code."""
    for problem in frontend_problems():
        print(f"warning: {problem}", file=sys.stderr)
    try:
        cache = fetch_assets(cache_dir, progress=True)
        missing = missing_assets(cache)
    except AssetFetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if missing:
        print(f"error: still missing in {cache}: {', '.join(a.dirname for a in missing)}", file=sys.stderr)
        return 1
    print(f"Solara front-end assets ready in {cache}")
    return 0

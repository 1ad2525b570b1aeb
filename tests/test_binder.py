"""Binder builds what the notebooks need: repo2docker picks up binder/, and its requirements resolve.

Network-free checks first; the pip resolution last. The CPU-only torch index
(download.pytorch.org) is not reachable from every machine: then the check resolves
without it, and says so.
"""

import json
import re
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

# Documentation and packaging checks: `pytest -m "not docs"` leaves them out (a quick unit run).
pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
REQUIREMENTS = BINDER / "requirements.txt"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_INDEX_HOST = "download.pytorch.org"
RUNTIME_PACKAGES = {"torch", "numpy", "ipywidgets", "plotly", "anywidget", "jupyterlab", "voila"}
TESTED_TORCH = Version("2.13.0")  # the version the lab is developed and tested with


def requirement_lines() -> list[str]:
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def repo2docker_executable() -> str:
    for name in ("repo2docker", "jupyter-repo2docker"):
        found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
        if found:
            return found
    pytest.skip("repo2docker is not installed (pip install jupyter-repo2docker)")


# --- the files, read as text (no network, no repo2docker) ----------------------------------


def test_requirements_put_the_cpu_index_above_torch_and_install_the_repo_last():
    lines = requirement_lines()
    torch_line = next(i for i, line in enumerate(lines) if re.match(r"torch\b", line))
    assert lines.index(f"--extra-index-url {CPU_INDEX}") < torch_line
    assert lines[-1] == ".", "the last line installs trainlab itself, from the repository root"
    names = {Requirement(line).name.lower() for line in lines if not line.startswith("-") and line != "."}
    assert RUNTIME_PACKAGES <= names, f"missing: {RUNTIME_PACKAGES - names}"
    torch = Requirement(lines[torch_line])
    assert torch.specifier.contains(TESTED_TORCH), f"{torch} must allow torch {TESTED_TORCH}"


def test_runtime_and_start_script():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    start = BINDER / "start"
    text = start.read_text()
    assert text.startswith("#!/bin/bash") and text.rstrip().endswith('exec "$@"')
    assert start.stat().st_mode & 0o111, "binder/start must be executable"


# --- repo2docker, without Docker ---------------------------------------------------------


def test_repo2docker_renders_a_build_that_installs_the_requirements(tmp_path):
    # --no-build renders the Dockerfile without touching a container engine.
    result = subprocess.run([repo2docker_executable(), "--no-build", "--no-run", str(ROOT)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    dockerfile = result.stdout
    assert "python=3.11" in result.stderr + dockerfile
    copy_repo = dockerfile.index("COPY --chown=0:0 src/ ${REPO_DIR}/")
    install = dockerfile.index('pip install --no-cache-dir -r "binder/requirements.txt"')
    # pip runs after the whole repository is copied, in ${REPO_DIR}: the "." line finds trainlab there
    assert copy_repo < install
    assert "WORKDIR ${REPO_DIR}" in dockerfile[:install]
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile


def test_repo2docker_picks_the_python_buildpack_from_binder():
    pytest.importorskip("repo2docker", reason="repo2docker is not installed (pip install jupyter-repo2docker)")
    from repo2docker.app import Repo2Docker
    from repo2docker.buildpacks import PythonBuildPack
    from repo2docker.utils import chdir

    app = Repo2Docker()
    with chdir(str(ROOT)):
        picked = next(bp for bp in (BP(base_image=app.base_image) for BP in app.buildpacks) if bp.detect())
        assert type(picked) is PythonBuildPack
        assert picked.binder_dir == "binder"
        assert picked.python_version == "3.11"


# --- pip resolves the requirements (network) ---------------------------------------------


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def package_indexes() -> list[str]:
    """Where pip looks for packages here: its index, extra indexes and find-links (pip's config and PIP_* variables)."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    settings: dict[str, str] = {}
    for line in listed.splitlines():  # like global.index-url='https://...' or :env:.find-links='/opt/wheels'
        key, _, value = line.partition("=")
        settings[key.rsplit(".", 1)[-1]] = settings.get(key.rsplit(".", 1)[-1], "") + " " + value.strip("'\"")
    places = " ".join(settings.get(key, "") for key in ("extra-index-url", "find-links")).split()
    return (settings.get("index-url", "").split() or ["https://pypi.org/simple"]) + places


def index_reachable(place: str) -> bool:
    """Whether pip could read ``place``: a folder or file:// URL that exists, or a host that answers."""
    if "://" not in place or place.startswith("file://"):
        return Path(place.removeprefix("file://")).exists()
    host = place.split("://", 1)[1].split("/", 1)[0].split("@")[-1]
    name, _, port = host.partition(":")
    return reachable(name, int(port) if port else (443 if place.startswith("https") else 80))


@pytest.mark.network
def test_requirements_resolve(tmp_path):
    if not any(index_reachable(place) for place in package_indexes()):
        pytest.skip("no package index can be reached from here (pip config list); the resolution needs one")
    lines = REQUIREMENTS.read_text().splitlines()
    if not reachable(CPU_INDEX_HOST):
        lines = [line for line in lines if CPU_INDEX not in line]
        message = (f"{CPU_INDEX_HOST} is not reachable from here: resolving binder/requirements.txt "
                   "without the CPU-only torch index (so pip may pick a CUDA build of torch)")
        print(message)
        warnings.warn(message)
    lines = [str(ROOT) if line.strip() == "." else line for line in lines]  # "." is the repo root
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.json"
    # --ignore-installed: resolve every package, not just what this venv lacks
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--disable-pip-version-check", "--report", str(report), "-r", str(requirements)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = {item["metadata"]["name"].lower(): item for item in json.loads(report.read_text())["install"]}
    assert RUNTIME_PACKAGES | {"trainlab"} <= set(chosen)
    assert chosen["trainlab"]["download_info"]["url"] == ROOT.as_uri()

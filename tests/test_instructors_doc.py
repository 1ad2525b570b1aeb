"""docs/instructors.md: its links lead somewhere, and the commands and options it names exist."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from voila.configuration import VoilaConfiguration

# Documentation and packaging checks: `pytest -m "not docs"` leaves them out (a quick unit run).
pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "instructors.md"
TEXT = DOC.read_text()


def test_it_is_linked_from_both_readmes():
    assert "docs/instructors.md" in (ROOT / "README.md").read_text()
    assert "../docs/instructors.md" in (ROOT / "notebooks" / "README.md").read_text()


@pytest.mark.parametrize("target", sorted(set(re.findall(r"\]\((\.\.[^)#]+)\)", TEXT))))
def test_every_relative_link_leads_to_a_file_of_the_repository(target):
    assert (DOC.parent / target).resolve().exists(), f"docs/instructors.md links to {target}, which does not exist"


def test_the_launch_links_are_the_readmes():
    readme_links = set(re.findall(r"https://mybinder\.org/v2/gh/[^)\s`]+", (ROOT / "README.md").read_text()))
    doc_links = set(re.findall(r"https://mybinder\.org/v2/gh/[^)\s`]+", TEXT))
    assert doc_links and doc_links <= readme_links


def test_the_culling_options_are_the_kernel_managers_and_voila_uses_one():
    named = set(re.findall(r"MappingKernelManager\.(\w+)", TEXT))
    assert named >= {"cull_idle_timeout", "cull_interval", "cull_connected"}
    assert named <= set(MappingKernelManager.class_trait_names())
    voilas = VoilaConfiguration.class_traits()["multi_kernel_manager_class"].default_value
    assert "MappingKernelManager" in voilas  # config given for MappingKernelManager reaches Voila's kernels


def test_the_measurement_it_quotes_exists_and_the_make_target_too():
    from benchmarks.notebook_memory import workshop_cpu_share, workshop_peak_memory  # noqa: F401

    assert "benchmarks/notebook_memory.py" in TEXT and "workshop_cpu_share()" in TEXT
    assert re.search(r"^bench:", (ROOT / "Makefile").read_text(), re.M)


def test_the_repo2docker_command_takes_the_flags_it_is_given():
    repo2docker = shutil.which("repo2docker") or str(Path(sys.executable).parent / "repo2docker")
    command = re.search(r"^repo2docker (--.+)$", TEXT, re.M).group(1)
    flags = set(re.findall(r"--[\w-]+", command))
    if not Path(repo2docker).exists():
        pytest.fail("repo2docker is not installed: pip install jupyter-repo2docker (tests/test_binder.py uses it too)")
    help_text = subprocess.run([repo2docker, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert flags and all(flag in help_text for flag in flags), flags


def test_the_presets_it_lists_are_the_dashboard_s_and_each_family_has_one():
    from trainlab.widgets.playground_panel import FAMILIES, PRESETS

    listed = re.findall(r"^\| `\"(\w+)\"` \|", TEXT, re.M)
    assert listed and set(listed) == set(PRESETS)
    shown = {name for preset in listed for name in PRESETS[preset]}
    assert all(set(names) <= shown for names in FAMILIES.values())

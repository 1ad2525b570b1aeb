"""The notebooks open unmodified: their saved kernel metadata is what a current ipykernel reports.

JupyterLab writes the kernel's spec and language info into a notebook it opens; where the
saved ones differ, every notebook comes up modified and autosave rewrites it.
"""

import json
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

# Documentation and packaging checks: `pytest -m "not docs"` leaves them out (a quick unit run).
pytestmark = pytest.mark.docs

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def kernel_metadata():
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        language_info = client.kernel_info(reply=True, timeout=60)["content"]["language_info"]
        spec = manager.kernel_spec
        return {"display_name": spec.display_name, "language": spec.language, "name": "python3"}, language_info
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_kernel_metadata_is_what_the_kernel_reports(path, kernel_metadata):
    kernelspec, language_info = kernel_metadata
    saved = json.loads(path.read_text())["metadata"]
    assert saved["kernelspec"] == kernelspec
    # The patch version differs between machines (Binder's Python 3.11.x): the rest must match.
    assert {k: v for k, v in saved["language_info"].items() if k != "version"} == \
        {k: v for k, v in language_info.items() if k != "version"}
    assert saved["language_info"]["version"].rsplit(".", 1)[0] == language_info["version"].rsplit(".", 1)[0]

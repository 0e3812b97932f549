"""The walkthrough notebook executes top to bottom (with tiny runs), so it cannot rot."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from shared_configs import FAST_COMPILE_XLA_FLAGS

pytestmark = pytest.mark.docs  # a test of the documentation, not of the product

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_executes(monkeypatch):
    monkeypatch.setenv("FASTTD3X_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
    monkeypatch.setenv("XLA_FLAGS", FAST_COMPILE_XLA_FLAGS)  # the kernel compiles fast
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs)
    assert "reloaded policy on 64 new episodes" in text and "CRITIC_LEARNING_RATE=3e-03" in text
    assert "continued run equals the uninterrupted one bit for bit: True" in text
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 4  # one agent, seeds, and the sweep's curves and grid plots

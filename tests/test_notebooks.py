"""The what-if notebooks run top to bottom (at a small size) in a real Jupyter kernel."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, monkeypatch):
    monkeypatch.setenv("LSBM_NOTEBOOK_SMALL", "1")
    notebook = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "commit notebooks without outputs"
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    results = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "execute_result"]
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors and len(results) >= 2


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2
    assert os.path.basename(NOTEBOOKS[0]).endswith(".ipynb")

"""The example notebook runs end to end and tells the story it claims."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "walkthrough.ipynb"


def test_notebook_is_up_to_date_with_its_generator() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebook", NOTEBOOK.with_name("make_notebook.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [c.source for c in module.build().cells] == [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells]


def test_notebook_runs_end_to_end(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "inp_unf  (1, 75, 784)" in text
    assert "out      (1, 1, 28, 28)" in text
    assert "check: convlens.conv2d gives" in text
    images = sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))
    assert images >= 3  # the by-hand figure, the demo figure, the im2col picture
    assert list(tmp_path.iterdir()) == []  # the notebook writes no files

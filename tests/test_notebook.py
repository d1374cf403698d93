"""The scoring-tuning notebook runs top to bottom and writes params the server accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from inkstep.settings import PACKAGE_ROOT
from scoring import ScoringParams, load_params

NOTEBOOK = PACKAGE_ROOT / "notebooks" / "scoring_tuning.ipynb"


def _ensure_python3_kernel() -> None:
    """Install this venv's ipykernel as `python3` when no such kernelspec exists."""
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--sys-prefix"],
            check=True,
            capture_output=True,
        )


def test_notebook_runs_and_writes_loadable_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ensure_python3_kernel()
    out = tmp_path / "params.json"
    monkeypatch.setenv("INKSTEP_NOTEBOOK_OUT", str(out))
    monkeypatch.delenv("INKSTEP_REPLAY_FILE", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=110,
        resources={"metadata": {"path": str(PACKAGE_ROOT)}},
    )
    client.execute()
    params = load_params(out)
    assert isinstance(params, ScoringParams)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # the two figures

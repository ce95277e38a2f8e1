"""The example notebooks run from top to bottom without a cell error, on this interpreter, so they
never rot. Each gets its own kernel (this venv's python, from a kernel spec in a temp folder) and
its notebook folder as the working directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install 'smugir[notebooks]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install 'smugir[notebooks]')")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install 'smugir[notebooks]')")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "examples" / "notebooks"
CELL_TIMEOUT = 180  # seconds per cell: the slowest (EfficientNet-Lite0) takes ~15 s on an idle machine
KERNEL = "smugir-test"


@pytest.fixture
def kernel_manager(tmp_path, monkeypatch):
    """A kernel running sys.executable, with Jupyter's and IPython's state in the temp folder; shut down after."""
    for variable, folder in [("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_CONFIG_DIR", "config"),
                             ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython")]:
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / folder))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    spec = tmp_path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "smugir test kernel", "language": "python",
    }))
    manager = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]))
    yield manager
    if manager.has_kernel:  # nbclient leaves a kernel it did not start running
        manager.shutdown_kernel(now=True)


def test_the_notebooks_are_committed_without_large_outputs():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.stem for p in paths] == ["image", "text"]
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), path.name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["image", "text"])
def test_notebook_runs_without_a_cell_error(name, kernel_manager):
    path = NOTEBOOKS / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, km=kernel_manager, timeout=CELL_TIMEOUT, allow_errors=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    views = [o["data"]["text/html"] for o in outputs if o.output_type in ("execute_result", "display_data")
             and "text/html" in o.get("data", {})]
    assert len(views) >= 3 and all("<" in view for view in views)  # the results show their HTML views
    assert sys.executable in json.dumps(kernel_manager.kernel_spec.argv)

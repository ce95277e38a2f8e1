"""smugir installs beside a user's own stack: pyproject.toml declares ranges, not pins.

A throwaway venv gets older (but compatible) numpy and onnxruntime first, as a user's project
would have them; `pip install` of smugir must keep them (no downgrade, no upgrade) and work. The
wheels come from pip's index (this machine: its local mirror); bounded by a timeout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
THEIRS = {"numpy": "2.3.5", "onnxruntime": "1.30.0"}  # older than constraints.txt, inside the declared ranges


def _run(*command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.mark.slow
def test_install_next_to_older_numpy_and_onnxruntime_keeps_them(tmp_path):
    source = tmp_path / "source"  # a copy: building writes egg-info into the source tree
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "tests", "benchmarks", "examples", "*.egg-info", "build", "__pycache__"))
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    _run(*pip, *(f"{name}=={version}" for name, version in THEIRS.items()))
    _run(*pip, str(source))
    listed = _run(str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze").stdout
    installed = dict(line.split("==") for line in listed.splitlines() if "==" in line)
    assert {name: installed[name] for name in THEIRS} == THEIRS
    model = REPO / "tests" / "data" / "mnist" / "mnist-net_256x2.onnx"
    _run(str(venv / "bin" / "smug"), "inspect", str(model), timeout=120)
    digit = REPO / "examples" / "data" / "mnist_test_2.png"
    _run(str(venv / "bin" / "smug"), "explain", str(model), str(digit), "--ig-steps", "16", "--window", "4", timeout=120)

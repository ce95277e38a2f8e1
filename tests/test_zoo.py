"""Conformance suite: every export of the architecture zoo (tests/data/zoo/, issue 20 item 4).

Each file is what torch (TorchScript at opset 13, at opset 17 with a dynamic batch, dynamo),
skl2onnx or Keras writes for one architecture family; manifest.json says which. The files are
checked against the manifest and run on onnxruntime, then read by `smug inspect`. Exports smugir
cannot read yet carry a strict xfail naming what stops them, so the mark must go once they pass.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from smugir.cli import main

ZOO = Path(__file__).parent / "data" / "zoo"
MANIFEST = json.loads((ZOO / "manifest.json").read_text())

# exports `smug inspect` refuses today, with what stops them
NOT_READ: dict[str, str] = {}


def mark(row: dict, known: dict[str, str]) -> object:
    reason = known.get(row["file"])
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(row, id=row["file"], marks=marks)


def test_manifest_covers_every_file() -> None:
    assert sorted(r["file"] for r in MANIFEST) == sorted(p.name for p in ZOO.glob("*.onnx"))


@pytest.mark.parametrize("row", [pytest.param(r, id=r["file"]) for r in MANIFEST])
def test_export_is_the_one_made_and_runs(row: dict) -> None:
    data = (ZOO / row["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == row["sha256"]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    shape = [1 if d is None else d for d in row["input_shape"]]
    outputs = session.run(None, {session.get_inputs()[0].name: np.zeros(shape, np.float32)})
    assert outputs


@pytest.mark.parametrize("row", [mark(r, NOT_READ) for r in MANIFEST])
def test_smug_inspect_reads_export(row: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["inspect", str(ZOO / row["file"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err

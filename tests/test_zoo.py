"""Conformance suite: every export of the architecture zoo (tests/data/zoo/, issue 20 item 4).

Each file is what torch (TorchScript at opset 13, at opset 17 with a dynamic batch, dynamo),
skl2onnx or Keras writes for one architecture family; manifest.json says which. The files are
checked against the manifest and run on onnxruntime, read by `smug inspect`, then explained end to
end (small top-k and windows, so the whole zoo stays quick) with the mask verified on onnxruntime
and the first layer's gradient graph checked against a central difference. Exports smugir cannot
read or explain yet carry a strict xfail naming what stops them, so the mark must go once they pass.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from smugir.attribution import forget_providers, provider_for
from smugir.cli import main
from smugir.explain import explain
from smugir.firstlayer import first_layer
from smugir.model import load_model

ZOO = Path(__file__).parent / "data" / "zoo"
MANIFEST = json.loads((ZOO / "manifest.json").read_text())

# exports `smug inspect` refuses today, with what stops them
NOT_READ: dict[str, str] = {}


# exports `explain` cannot explain today, with what stops them: those it cannot read
NOT_EXPLAINED: dict[str, str] = dict(NOT_READ)
TOP_K = 4  # neurons kept; the zoo's first layers have 128-2048 neurons
WINDOW = 8  # pixels a side: 16 mask units on a 32 x 32 input, 64 on AlexNet's 64 x 64


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


def zoo_input(row: dict) -> np.ndarray:
    """A digits sample for the scikit-learn MLP, a seeded image in [0, 1) for the rest."""
    if row["arch"] == "sklearn_mlp":
        return np.load(ZOO / "digits_samples.npz")["images"][:1].reshape(1, 64).astype(np.float32)
    shape = [1 if d is None else d for d in row["input_shape"]]
    return np.random.default_rng(0).uniform(0, 1, size=shape).astype(np.float32)


@pytest.mark.parametrize("row", [mark(r, NOT_EXPLAINED) for r in MANIFEST])
def test_export_is_explained_and_verified(row: dict) -> None:
    x = zoo_input(row)
    model = load_model(ZOO / row["file"])
    try:
        image = len(model.input_shape) == 4
        e = explain(model, x, top_k=TOP_K, window=WINDOW if image else None, timeout=60)
        assert e.status == "optimal" and e.verified, e.summary()
        assert e.ig_converged, e.attribution["summary"]
        assert e.attribution["provider"] == "gradient-graph", e.attribution["provider"]  # no finite-difference fallback
        assert 0 < len(e.neurons) <= TOP_K and e.unit_mask.any()

        # the first layer's gradient graph against a central difference of the logit along the
        # gradient it claims (a scaled or turned gradient has another slope there), at a point moved
        # off the first layer's kinks (zeros tie in a MaxPool after a ReLU: no derivative there)
        layer = first_layer(model)
        gradient = provider_for(model, layer.post_name, "logit")
        h = layer.activations(x).reshape(1, *layer.output_shape[1:]).astype(np.float64)
        point = h + np.abs(np.random.default_rng(1).normal(size=h.shape)) * 0.1 * np.sqrt(np.mean(h**2))
        claimed = gradient(point, e.label)[1][0]
        norm = float(np.linalg.norm(claimed))
        assert np.isfinite(norm) and norm > 0
        slopes = []
        for relative in (1e-4, 1e-5):  # the smaller step crosses fewer kinks, the larger rounds less
            step = relative * float(np.linalg.norm(point))
            values, _ = gradient(np.concatenate([point - step * claimed / norm, point + step * claimed / norm]), e.label)
            slopes.append(float(values[1] - values[0]) / (2 * step))
        assert min(abs(slope - norm) for slope in slopes) <= 0.05 * norm, (slopes, norm)
    finally:
        forget_providers(model)

"""The pipeline end to end on the real models: minimal masks, verification, files, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DATA, cifar_samples, mnist_samples, resnet_inputs

from smugir.cli import main
from smugir.errors import InputError
from smugir.explain import explain
from smugir.model import load_model

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"
SAMPLES = f"{DATA}/mnist/mnist_test_samples.npz"


@pytest.fixture(scope="module")
def mnist_model():
    return load_model(MNIST)


def test_mnist_minimal_mask_is_verified(mnist_model):
    images, labels = mnist_samples()
    result = explain(mnist_model, images[0], top_k=32, gamma=0.5)
    assert result.label == labels[0] == result.predicted
    assert result.status == "optimal"
    assert result.verification.holds and result.best.verified
    assert result.problem.is_satisfied(result.unit_mask)
    assert result.objective == result.unit_mask.sum() == result.bound
    assert result.mask.shape == mnist_model.input_shape and result.saliency.shape == mnist_model.input_shape
    # The SMUG map is zero exactly outside the mask and positive on kept pixels covered by kept neurons.
    assert not result.saliency[~result.mask].any()
    assert len(result.neurons) <= 32 and all(s > 0 for s in result.neuron_scores)


def test_one_unit_less_is_infeasible(mnist_model):
    """Minimality checked independently: no mask with objective - 1 units satisfies the problem."""
    from scipy import sparse

    from smugir.problem import MaskProblem
    from smugir.solve import solve

    images, _ = mnist_samples()
    result = explain(mnist_model, images[1], top_k=16, gamma=0.5)
    p = result.problem
    # Add "sum m <= objective - 1" as a constraint: -sum m > -(objective - 1) - 1 (integers).
    harder = MaskProblem(
        sparse.vstack([p.coefficients, -np.ones((1, p.n_units))]),
        np.append(p.bounds, -result.objective + 0.5),
        p.weights,
        p.metadata,
    )
    assert solve(harder)[0].status == "infeasible"


def test_window_units_and_smug_base(mnist_model):
    images, _ = mnist_samples()
    windowed = explain(mnist_model, images[2], window=4)
    assert windowed.units.n_units == 49 and windowed.best.verified
    base = explain(mnist_model, images[2], window=4, method="smug_base")
    # A minimal mask never keeps a unit that no kept neuron sees, so it lies inside SMUG_base's mask.
    assert not (windowed.unit_mask & ~base.unit_mask).any()
    assert base.unit_mask.sum() > windowed.unit_mask.sum()


def test_several_distinct_minimal_masks(mnist_model):
    images, _ = mnist_samples()
    result = explain(mnist_model, images[3], top_k=8, solutions=3)
    masks = [tuple(np.flatnonzero(f.unit_mask)) for f in result.found]
    assert len(set(masks)) == len(masks) == 3
    objectives = [f.objective for f in result.found]
    assert objectives == sorted(objectives) and all(f.verified for f in result.found)


def test_conv_models_explain_and_verify():
    images, _ = cifar_samples()
    small = explain(DATA / "cifar" / "cifar10_small.onnx", images[0], top_k=16, window=2)
    assert small.status == "optimal" and small.best.verified
    resnet = explain(DATA / "cifar" / "resnet_2b.onnx", resnet_inputs(images[:1])[0], top_k=16)
    assert resnet.status == "optimal" and resnet.best.verified


@pytest.mark.slow
def test_whole_network_mask_keeps_the_prediction(mnist_model):
    images, labels = mnist_samples()
    result = explain(mnist_model, images[0], method="network", window=7, margin=0.0, timeout=120)
    if result.status == "infeasible":
        pytest.skip("no mask keeps the label for this sample (the paper reports SAT for 41 of 100 images)")
    assert result.status in ("optimal", "feasible")
    assert result.best.network_margin > 0
    masked = result.units.masked_input(result.x, result.baseline, result.unit_mask)
    assert int(np.argmax(mnist_model.run(masked)[0])) == labels[0]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"gamma": 1.0}, "gamma"),
        ({"gamma": -0.5}, "gamma"),
        ({"top_k": 0}, "top_k"),
        ({"window": 0}, "window"),
        ({"label": 10}, "label 10 is out of range"),
        ({"label": -1}, "out of range"),
        ({"solutions": 0}, "solutions"),
        ({"method": "magic"}, "unknown method"),
    ],
)
def test_bad_options(mnist_model, options, message):
    images, _ = mnist_samples()
    with pytest.raises(InputError, match=message):
        explain(mnist_model, images[0], **options)


def test_bad_inputs(mnist_model):
    with pytest.raises(InputError, match="model input is"):
        explain(mnist_model, np.zeros((32, 32)))
    x = np.zeros((28, 28), np.float32)
    x[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        explain(mnist_model, x)


def test_cli_writes_report_and_pictures(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["explain", str(MNIST), f"{SAMPLES}:images[4]", "--out", str(out), "--top-k", "16"])
    printed = capsys.readouterr().out
    assert code == 0 and "optimal" in printed and "hold in float32" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "optimal" and report["verified"] is True
    mask = np.load(out / "mask.npy")
    assert mask.sum() == report["kept_units"]
    for name in ("saliency.png", "overlay.png", "explanation.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run without --force refuses before doing any work, and changes nothing.
    before = (out / "report.json").read_bytes()
    assert main(["explain", str(MNIST), f"{SAMPLES}:images[4]", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gamma", "1.2"], "gamma"),
        (["--top-k", "0"], "top_k"),
        (["--window", "0"], "window"),
        (["--label", "12"], "out of range"),
        (["--solver", "nosuch"], "nosuch"),
    ],
)
def test_cli_bad_options_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = main(["explain", str(MNIST), f"{SAMPLES}:images[0]", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_cli_input_shape_mismatch(capsys):
    code = main(["explain", str(MNIST), f"{DATA}/cifar/cifar10_test_samples.npz:images_nhwc[0]"])
    assert code == 2 and "model input is" in capsys.readouterr().err


def test_all_backends_agree_on_the_real_mnist_samples():
    """4x4 windows (49 units) keep the z3 backends fast; HiGHS alone also runs pixel-level elsewhere."""
    from smugir.explain import finish, prepare

    images, _ = mnist_samples()
    model = load_model(MNIST)
    for x in images:
        setup = prepare(model, x, top_k=16, window=4)
        optima = {backend: finish(setup, backend, timeout=60) for backend in ("highs", "z3", "pysmt:z3", "z3-optimize")}
        assert {e.status for e in optima.values()} == {"optimal"}
        assert len({e.objective for e in optima.values()}) == 1, {b: e.objective for b, e in optima.items()}
        assert all(e.best.verified for e in optima.values())


def test_whole_network_timeout_still_returns_a_verified_mask(mnist_model):
    """49 units are too many to prove in 5 s, but the irreducible starting mask is never lost."""
    images, _ = mnist_samples()
    result = explain(mnist_model, images[0], method="network", window=4, timeout=5)
    assert result.status in ("feasible", "optimal")
    assert result.best.network_margin > 0 and result.bound <= result.objective
    assert result.objective < result.units.n_units


# ---- explanations that say nothing: a status and a reason, never "verified", exit code 3 --------


def _variant(tmp_path, name: str, change) -> str:
    """The MNIST model with its first-layer initializers changed by `change(name, array)`."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(MNIST)
    for tensor in proto.graph.initializer:
        if tensor.name.startswith("layers.0."):
            array = change(tensor.name, numpy_helper.to_array(tensor).copy()).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    path = tmp_path / name
    onnx.save(proto, path)
    return str(path)


def shifted_bias_model(tmp_path) -> str:
    """First-layer biases + 10: the zero baseline alone keeps every neuron above half its value."""
    return _variant(tmp_path, "shifted.onnx", lambda name, a: a + 10 if name.endswith("bias") else a)


def _nan_weights_model(tmp_path) -> str:
    return _variant(tmp_path, "nan.onnx", lambda name, a: a * np.nan if name.endswith("weight") else a)


def _vacuous_cases(tmp_path):
    from PIL import Image

    white = tmp_path / "white.png"
    Image.new("L", (28, 28), 255).save(white)
    unsegmented = tmp_path / "none.npy"
    np.save(unsegmented, -np.ones((28, 28), dtype=np.int64))
    digit = str(DATA.parent.parent / "examples" / "data" / "mnist_test_2.png")
    return {
        "no_neurons": [str(MNIST), digit, "--label", "8"],
        "no_neurons white": [str(MNIST), str(white)],
        "no_units": [str(MNIST), digit, "--segments", str(unsegmented)],
        "baseline_suffices": [shifted_bias_model(tmp_path), digit, "--formulation", "published"],
        "baseline_suffices network": [shifted_bias_model(tmp_path), digit, "--method", "network"],
    }


@pytest.mark.parametrize("case", ["no_neurons", "no_neurons white", "no_units", "baseline_suffices", "baseline_suffices network"])
def test_an_explanation_that_says_nothing_has_a_status_a_reason_and_exit_3(case, tmp_path, capsys):
    status = case.split()[0]
    arguments = _vacuous_cases(tmp_path)[case]
    out = tmp_path / "out"
    assert main(["explain", *arguments, "--out", str(out), "--ig-steps", "32"]) == 3
    printed = capsys.readouterr()
    assert f"result      no explanation ({status}): " in printed.out and printed.err == ""
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == status and report["verified"] is False and report["solutions"] == []
    assert report["reason"].endswith(".") is False and len(report["reason"]) > 20  # one sentence, no full stop
    assert report["kept_units"] == 0 and np.load(out / "mask.npy").size == 784
    assert main(["explain", *arguments, "--json", "--ig-steps", "32"]) == 3
    assert json.loads(capsys.readouterr().out)["status"] == status
    if status == "baseline_suffices":
        assert report["baseline_check"]["verified"] is True  # the evidence: the empty mask holds in float32


def test_non_finite_scores_are_refused_by_name(tmp_path, capsys):
    """NaN first-layer weights make the class scores NaN: not a classifier's output, exit 2, one line."""
    digit = str(DATA.parent.parent / "examples" / "data" / "mnist_test_2.png")
    assert main(["explain", _nan_weights_model(tmp_path), digit, "--out", str(tmp_path / "out"), "--ig-steps", "32"]) == 2
    err = capsys.readouterr().err
    assert "non-finite" in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_the_degenerate_case_is_detected_before_solving(tmp_path):
    result = explain(shifted_bias_model(tmp_path), mnist_samples()[0][0], ig_steps=32, formulation="published")
    assert result.vacuous.status == "baseline_suffices" and "solve" not in result.timings
    assert result.verification.holds and not result.unit_mask.any() and not result.verified
    # The check is exact: the same neurons with gamma close to 1 need pixels again.
    assert explain(MNIST, mnist_samples()[0][0], ig_steps=32).vacuous is None


def test_a_sentence_of_padding_has_no_units(capsys):
    text = DATA.parent.parent / "examples" / "text"
    assert main(["explain", str(text / "polarity_cnn.onnx"), "<pad> <pad>", "--vocab", str(text / "vocab.txt")]) == 3
    assert "no explanation (no_units)" in capsys.readouterr().out


def test_export_of_a_degenerate_problem_writes_nothing_and_exits_3(tmp_path, capsys):
    digit = str(DATA.parent.parent / "examples" / "data" / "mnist_test_2.png")
    target = tmp_path / "p.smt2"
    assert main(["export", shifted_bias_model(tmp_path), digit, "--out", str(target), "--bound", "opt", "--ig-steps", "32",
                 "--formulation", "published"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("smug export: no explanation: nothing written: baseline_suffices") and err.count("\n") == 1
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["shifted.onnx"]


def test_a_nan_margin_is_bad_input(capsys):
    digit = str(DATA.parent.parent / "examples" / "data" / "mnist_test_2.png")
    assert main(["explain", str(MNIST), digit, "--method", "network", "--margin", "nan"]) == 2
    assert "margin must be a finite number" in capsys.readouterr().err


def test_report_timings_account_for_the_whole_run():
    """A fresh `smug explain` process: every phase timed, imports and loading included, nothing unaccounted."""
    import subprocess
    import sys
    import time

    model, image = DATA / "mnist" / "mnist-net_256x2.onnx", DATA.parent.parent / "examples" / "data" / "mnist_test_2.png"
    clock = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "smugir", "explain", str(model), str(image), "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - clock
    assert done.returncode == 0, done.stderr
    timings = json.loads(done.stdout)["timings_seconds"]
    for phase in ("imports", "load", "first_layer", "classify", "gradient_graph", "ig", "build", "solve", "verify", "total"):
        assert phase in timings, phase
    assert timings["imports"] > 0.05 and timings["load"] > 0.001  # neither reads 0.00
    phases = sum(v for k, v in timings.items() if k != "total")
    assert abs(phases - timings["total"]) <= 0.02 * timings["total"] + 0.01
    assert timings["total"] <= wall  # the interpreter's own start is all that is left out


def test_a_run_is_reused_only_for_the_same_model_and_input(mnist_model, monkeypatch):
    """Vacuity and verification run x and the baseline several times; onnxruntime sees each once."""
    from collections import OrderedDict

    import smugir.verify as verify
    from smugir.firstlayer import first_layer
    from smugir.verify import run_with_preactivations

    monkeypatch.setattr(verify, "_RECENT_RUNS", OrderedDict())  # runs of earlier tests on the same model
    model = mnist_model
    layer = first_layer(model)
    calls = []
    original = type(model).run
    monkeypatch.setattr(type(model), "run", lambda self, x, extra=(): calls.append(1) or original(self, x, extra))
    x = mnist_samples()[0][0]
    first = run_with_preactivations(model, layer, x)
    again = run_with_preactivations(model, layer, x.copy())
    other = run_with_preactivations(model, layer, x + np.float32(1e-3))
    assert len(calls) == 2 and again is first and not np.array_equal(other[1], first[1])
    assert not first[1].flags.writeable  # shared: nobody may change it
    np.testing.assert_array_equal(first[1], original(model, x, (layer.pre_name,))[1])
    result = explain(model, x, top_k=8)
    assert result.verified

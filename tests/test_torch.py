"""The PyTorch bridge (`smugir.torch`): modules exported in memory, explained, and checked against
torch itself and against the same module exported to a file the usual way."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'smugir[torch]')")

import smugir.torch as bridge  # noqa: E402
from smugir.errors import InputError, UnsupportedModelError  # noqa: E402
from smugir.explain import explain  # noqa: E402

GAMMA = 0.5
# The tests export by hand with the TorchScript exporter, as smugir.torch does by default.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class SmallCNN(torch.nn.Module):
    """Conv -> BatchNorm -> ReLU -> Dropout -> Linear on 1x16x16 inputs: the first layer smugir reads
    is the Conv with the BatchNorm folded into it."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 6, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(6)
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(6 * 8 * 8, 5)

    def first(self, x):
        return self.bn(self.conv(x))

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.first(x))).flatten(1))


class SmallMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(36, 24)
        self.rest = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(24, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))

    def first(self, x):
        return self.linear(x.flatten(1))

    def forward(self, x):
        return self.rest(self.first(x))


def _cnn():
    torch.manual_seed(0)
    module = SmallCNN()
    with torch.no_grad():  # running statistics that are not the identity, so the fold is tested
        module.bn.running_mean.uniform_(-0.2, 0.2)
        module.bn.running_var.uniform_(0.5, 2.0)
        module.bn.weight.uniform_(0.5, 1.5)
    return module.eval(), torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def _mlp():
    torch.manual_seed(0)
    return SmallMLP().eval(), torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(2))


def _first_layer_holds(module, result, x):
    """The kept neurons' constraints, recomputed in float64 by torch itself on the masked input."""
    masked = np.where(result.mask, result.x, result.baseline)
    module.double()
    try:
        with torch.no_grad():
            on_x, on_masked, on_base = (module.first(torch.as_tensor(v, dtype=torch.float64).reshape(x.shape)).reshape(-1)
                                        for v in (result.x, masked, result.baseline))
    finally:
        module.float()
    kept = torch.as_tensor(result.neurons)
    return bool(torch.all(on_masked[kept] - on_base[kept] > GAMMA * (on_x[kept] - on_base[kept])))


@pytest.mark.parametrize("build", [_cnn, _mlp], ids=["cnn", "mlp"])
def test_module_is_explained_verified_and_equals_the_file_export(build, tmp_path):
    module, x = build()
    result = bridge.explain(module, x, top_k=12, gamma=GAMMA, solver="highs")
    assert result.status == "optimal" and result.verified
    assert result.model == f"torch:{type(module).__name__}"
    assert result.predicted == int(module(x).argmax())
    assert 0 < result.objective < result.units.n_units
    assert _first_layer_holds(module, result, x)

    path = tmp_path / "exported.onnx"  # what a user would write by hand
    torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["logits"], do_constant_folding=True)
    from_file = explain(path, x.numpy(), top_k=12, gamma=GAMMA, solver="highs")
    assert from_file.model_sha256 == result.model_sha256
    assert from_file.status == result.status and from_file.objective == result.objective
    assert from_file.neurons == result.neurons
    np.testing.assert_array_equal(from_file.mask, result.mask)
    np.testing.assert_allclose(from_file.saliency, result.saliency, rtol=1e-12)


@pytest.mark.slow  # the dynamo exporter's first export takes 10-25 s here
def test_dynamo_exporter_gives_the_same_minimal_mask_size():
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (the dynamo exporter needs it)")
    module, x = _mlp()
    model = bridge.to_model(module, x, exporter="dynamo")  # one dynamo export (about 10 s): what bridge.explain runs
    assert model.opset == bridge.OPSETS["dynamo"] and not model.batch_dynamic
    dynamo = explain(model, x.numpy(), top_k=12, gamma=GAMMA, solver="highs")
    torchscript = bridge.explain(module, x, top_k=12, gamma=GAMMA, solver="highs")
    assert dynamo.verified and dynamo.status == "optimal"
    assert dynamo.neurons == torchscript.neurons and dynamo.objective == torchscript.objective


def test_training_mode_is_exported_in_eval_mode_and_restored():
    module, x = _cnn()
    module.train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = bridge.to_model(module, x)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "training mode" in messages[0] and "'bn'" in messages[0] and "'drop'" in messages[0]
    assert caught[0].filename == __file__  # the warning names the caller's line
    assert module.training and module.bn.training and module.drop.training
    module.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model.run(x.numpy())[0].reshape(-1), module(x).numpy().reshape(-1), rtol=1e-5, atol=1e-6)


def test_dynamic_batch_only_when_asked():
    module, x = _mlp()
    assert not bridge.to_model(module, x).batch_dynamic
    assert bridge.to_model(module, x, dynamic_batch=True).batch_dynamic


def test_to_onnx_gives_the_bytes_to_model_reads():
    module, x = _mlp()
    raw = bridge.to_onnx(module, x.numpy().astype(np.float64))
    buffer = io.BytesIO()
    torch.onnx.export(module, (x,), buffer, dynamo=False, opset_version=17, input_names=["input"], output_names=["logits"])
    assert raw == buffer.getvalue()


class _Pair(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1), x.flatten(1)


class _Map(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("module, x, error, words", [
    (_Pair(), torch.rand(1, 1, 4, 4), UnsupportedModelError, "returns a tuple"),
    (_Map(), torch.rand(1, 1, 4, 4), UnsupportedModelError, "shape [1, 3, 4, 4]"),
    (torch.nn.Linear(4, 1), torch.rand(1, 4), UnsupportedModelError, "C >= 2"),
    (torch.nn.Linear(4, 3), torch.rand(2, 4), InputError, "2 samples"),
    (torch.nn.Linear(4, 3), torch.rand(1, 5), InputError, "fails on the example input of shape [1, 5]"),
    (torch.nn.Linear(4, 3), torch.ones(1, 4, dtype=torch.int64), InputError, "real-valued"),
    (torch.nn.Linear(4, 3), [0.0, 1.0, 2.0, 3.0], InputError, "torch.Tensor or numpy array"),
    ("model.pt", torch.rand(1, 4), InputError, "torch.nn.Module"),
])
def test_bad_modules_and_inputs_are_one_line_errors(module, x, error, words):
    with pytest.raises(error) as caught:
        bridge.explain(module, x)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_exporter_is_refused():
    with pytest.raises(InputError, match="unknown exporter 'jit'; accepted: torchscript, dynamo"):
        bridge.to_model(torch.nn.Linear(4, 3), torch.rand(1, 4), exporter="jit")


class _TextCNN(torch.nn.Module):
    """Embedding -> Conv1d -> ReLU -> max over time -> Linear: the form smugir.text reads."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(12, 8, padding_idx=0)
        self.conv = torch.nn.Conv1d(8, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16, 2)

    def forward(self, ids):
        return self.fc(torch.relu(self.conv(self.embedding(ids).transpose(1, 2))).max(dim=2).values)


def test_a_token_id_module_is_a_text_model_for_smugir_text():
    from smugir.text import Vocabulary, explain_sentence

    torch.manual_seed(0)
    module = _TextCNN().eval()
    tokens = ("<pad>", "<unk>", *(f"w{i}" for i in range(10)))
    vocabulary = Vocabulary(tokens, {t: i for i, t in enumerate(tokens)})
    ids, _ = vocabulary.encode("w1 w2 w3 w4 w5 w6", 9)
    model = bridge.to_model(module, torch.from_numpy(ids[None]))
    assert model.data_input.dtype == np.int64
    result = explain_sentence(model, "w1 w2 w3 w4 w5 w6", vocabulary, solver="highs")
    assert result.explanation.verified and result.explanation.status == "optimal"
    with torch.no_grad():
        assert result.explanation.predicted == int(module(torch.from_numpy(ids[None])).argmax())


def test_without_torch_the_import_is_one_clear_error():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import smugir.torch\nexcept Exception as exc:\n    print(type(exc).__name__, exc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "MissingDependencyError smugir.torch needs PyTorch: pip install 'smugir[torch]'"

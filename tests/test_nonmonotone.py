"""Non-monotone first-layer activations (issue 21 item 4): SiLU, HardSwish, LeakyRelu(alpha < 0).

Such an activation can rise while its pre-activation falls; the constraints are on pre-activations,
so such a neuron must never be kept (the problem would be infeasible), and an explanation is
"verified" only when a mask exists and held on onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from smugir.constraints import eligible_neurons
from smugir.explain import explain
from smugir.explanation import Found
from smugir.firstlayer import first_layer
from smugir.model import load_model

ACTIVATIONS = ("SiLU", "HardSwish", "LeakyRelu")


def _activation_nodes(kind: str) -> list[onnx.NodeProto]:
    if kind == "SiLU":
        return [helper.make_node("Sigmoid", ["pre"], ["gate"], name="sigmoid"), helper.make_node("Mul", ["pre", "gate"], ["h"], name="silu")]
    if kind == "HardSwish":
        return [helper.make_node("HardSwish", ["pre"], ["h"], name="hardswish")]
    return [helper.make_node("LeakyRelu", ["pre"], ["h"], name="leaky", alpha=-0.5)]


def _model(path: Path, kind: str, weight: np.ndarray, bias: np.ndarray) -> Path:
    n_out, n_in = weight.shape
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["pre"], name="fc1", transB=1), *_activation_nodes(kind),
             helper.make_node("Gemm", ["h", "w2", "b2"], ["logits"], name="fc2", transB=1)]
    inits = [numpy_helper.from_array(weight.astype(np.float32), "w"), numpy_helper.from_array(bias.astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(size=(3, n_out)).astype(np.float32), "w2"), numpy_helper.from_array(np.zeros(3, np.float32), "b2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8), path)
    return path


def test_a_neuron_whose_activation_rose_while_its_preactivation_fell_is_not_eligible(tmp_path: Path) -> None:
    # neuron 0: pre(baseline 0) = -1, pre(x) = -3; every activation here is higher at -3 than at -1
    weight, bias = np.array([[-2.0, 0.0], [1.0, 1.0]]), np.array([-1.0, 0.0])
    x = np.array([1.0, 1.0])
    for kind in ACTIVATIONS:
        layer = first_layer(load_model(_model(tmp_path / f"{kind}.onnx", kind, weight, bias)))
        assert layer.activation.kind != "none"
        pre_x, pre_b = layer.preactivations(x).reshape(-1), layer.preactivations(np.zeros(2)).reshape(-1)
        assert layer.activation(pre_x)[0] > layer.activation(pre_b)[0] and pre_x[0] < pre_b[0]
        assert list(eligible_neurons(layer, x, np.zeros(2))) == [False, True], kind
        assert list(eligible_neurons(layer, x, np.zeros(2), "published")) == [False, True], kind  # LeakyRelu(-0.5)(-3) > 0


def test_no_mask_is_never_verified() -> None:
    assert not Found(np.zeros(4, bool), "infeasible", None, None, None).verified


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(ACTIVATIONS), seed=st.integers(0, 2**16), formulation=st.sampled_from(["baseline-relative", "published"]),
       gamma=st.sampled_from([0.0, 0.5, 0.9]))
def test_explanations_with_non_monotone_activations_are_feasible_and_checked(tmp_path_factory, kind, seed, formulation, gamma) -> None:
    rng = np.random.default_rng(seed)
    path = _model(tmp_path_factory.mktemp("m") / "m.onnx", kind, rng.normal(size=(8, 6)), rng.normal(size=8))
    x = rng.normal(size=(1, 6)).astype(np.float32)
    result = explain(str(path), x, top_k=8, gamma=gamma, formulation=formulation, rank="activation", timeout=20)
    if result.vacuous is not None:
        assert not result.verified or result.vacuous is None
        return
    assert result.status in ("optimal", "feasible"), result.summary()
    assert result.verified and result.verification is not None and result.verification.holds
    assert result.to_json()["verified"] is True and result.to_json()["objective"] is not None

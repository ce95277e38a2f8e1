"""The constraint matrix stays sparse: it equals the dense construction, every backend and file
format reads the same optimum from it, and a 224x224 conv problem never becomes a dense matrix."""

from __future__ import annotations

import re
import tracemalloc

import highspy
import numpy as np
import onnx
import pytest
from conftest import DATA, cifar_samples, resnet_inputs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from scipy import sparse

import external_solvers
from smugir.constraints import base_saliency, problem_memory, receptive_units, smug_problem
from smugir.encoders.milp import MilpModel
from smugir.exporters.instance_files import export_problem
from smugir.firstlayer import first_layer
from smugir.model import load_model
from smugir.problem import MaskProblem
from smugir.solve import solve
from smugir.testing import first_layer_models, loaded_with_units
from smugir.units import input_layout, pixel_units


def _dense_reference(layer, x, baseline, units, neurons, gamma):
    """A column per unit from the layer's own forward pass: a_iu = pre_i(only u kept) - pre_i(none kept)."""
    kept = np.eye(units.n_units, dtype=bool)
    inputs = np.stack([units.masked_input(x, baseline, m).reshape(-1) for m in [np.zeros(units.n_units, bool), *kept]])
    pre = layer.preactivations(inputs.astype(np.float64)).reshape(len(inputs), -1)[:, neurons]  # one row (no unit) comes back 1-D
    coefficients = (pre[1:] - pre[0]).T
    bounds = gamma * layer.preactivations(x.astype(np.float64).reshape(-1))[neurons] - pre[0]
    return coefficients, bounds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(built=first_layer_models(), seed=st.integers(0, 2**16), unit_kind=st.sampled_from(["pixel", "window", "segment"]),
       gamma=st.floats(0, 0.99))
def test_sparse_problem_equals_the_dense_construction(built, seed, unit_kind, gamma, tmp_path):
    rng = np.random.default_rng(seed)
    model, layer, units = loaded_with_units(built, tmp_path, rng, unit_kind)
    x = rng.normal(size=model.input_shape)
    baseline = rng.normal(size=model.input_shape) * rng.integers(0, 2)
    neurons = rng.choice(layer.n_neurons, size=min(layer.n_neurons, 6), replace=False)
    problem = smug_problem(layer, x, baseline, units, neurons, gamma, formulation="published")
    coefficients, bounds = _dense_reference(layer, x, baseline, units, neurons, gamma)

    assert isinstance(problem.coefficients, sparse.csr_array)
    assert problem.coefficients.has_canonical_format and np.all(problem.coefficients.data != 0)
    scale = max(1.0, float(np.abs(coefficients).max(initial=0)), float(np.abs(bounds).max()))
    np.testing.assert_allclose(problem.coefficients.toarray(), coefficients, rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(problem.bounds, bounds, rtol=1e-9, atol=1e-9 * scale)
    # The receptive fields behind it: one row per neuron, exact pre-activations, sorted non-zero terms.
    fields = layer.fields(neurons)
    np.testing.assert_allclose(fields.values(x.reshape(-1)), layer.preactivations(x.reshape(-1))[neurons], rtol=1e-9, atol=1e-9 * scale)
    for row in range(neurons.size):
        terms = fields.neuron(row)
        assert np.all(np.diff(terms.field) > 0) and np.all(terms.coefficients != 0)
    # The saliency map: each unit sums the scores of the neurons whose field touches it.
    scores = rng.normal(size=layer.n_neurons)
    touches = np.abs(_dense_reference(layer, x, x + 1.0, units, neurons, 0.0)[0]) > 1e-9 * scale  # float noise aside
    covered = receptive_units(layer, units, neurons).toarray() > 0
    assert np.all(covered[touches])
    np.testing.assert_allclose(base_saliency(layer, units, neurons, scores), covered.T.astype(float) @ scores[neurons])


def test_dense_and_sparse_inputs_make_the_same_problem():
    rng = np.random.default_rng(3)
    dense = rng.normal(size=(5, 40)) * (rng.random((5, 40)) < 0.2)
    for given_as in (dense, sparse.csr_array(dense), sparse.coo_matrix(dense), sparse.csc_array(dense)):
        problem = MaskProblem(given_as, np.zeros(5), np.ones(40))
        assert isinstance(problem.coefficients, sparse.csr_array)
        np.testing.assert_array_equal(problem.coefficients.toarray(), dense)
        assert problem.coefficients.nnz == np.count_nonzero(dense)
    mask = rng.integers(0, 2, size=40)
    assert problem.constraint_values(mask) == pytest.approx(dense @ mask)
    assert np.array_equal(problem.used_units(), dense.any(axis=0))
    assert problem.row_scale() == pytest.approx(np.abs(dense).max(axis=1))


@pytest.fixture(scope="module")
def conv_problem() -> MaskProblem:
    """A real conv problem (resnet_2b, CIFAR, pixel units): most of its 1024 units are read by no row."""
    model = load_model(DATA / "cifar" / "resnet_2b.onnx")
    layer = first_layer(model)
    x = resnet_inputs(cifar_samples()[0])[1:2]
    units = pixel_units(input_layout(model.input_shape))
    neurons = np.argsort(-layer.preactivations(x))[:10]
    return smug_problem(layer, x, np.zeros_like(x), units, neurons, 0.5)


def test_every_backend_and_file_reads_the_same_optimum_of_a_sparse_problem(conv_problem, tmp_path):
    problem = conv_problem
    assert problem.coefficients.nnz < 0.05 * problem.n_constraints * problem.n_units
    optima = {name: solve(problem, name, timeout=60)[0] for name in ("highs", "z3", "z3-optimize")}
    assert {s.status for s in optima.values()} == {"optimal"}
    optimum = optima["highs"].objective
    assert {s.objective for s in optima.values()} == {optimum}
    for suffix in ("mps", "lp"):
        path = tmp_path / f"p.{suffix}"
        export_problem(problem, path, format=suffix)
        highs = highspy.Highs()
        highs.setOptionValue("output_flag", False)
        highs.readModel(str(path))
        assert highs.getNumNz() == problem.coefficients.nnz  # only the non-zeros are written
        highs.run()
        assert highs.getInfo().objective_function_value == pytest.approx(optimum)
    for bound, expected in ((int(optimum), "sat"), (int(optimum) - 1, "unsat")):
        path = tmp_path / f"p{bound}.smt2"
        export_problem(problem, path, bound=bound)
        text = path.read_text()
        row_terms = sum(len(re.findall(r"\(ite m_", line)) for line in text.splitlines() if line.startswith("(assert (< "))
        assert 0 < row_terms <= problem.coefficients.nnz
        assert external_solvers.run("z3", path)[0] == expected


def _stem_model(path) -> None:
    """EfficientNet-Lite0's stem geometry: 224x224x3 input, 3x3 stride-2 conv with 32 filters."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(0, 0.2, size=(32, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(0, 0.1, size=32).astype(np.float32), "b")
    head = numpy_helper.from_array(rng.normal(size=(10, 32)).astype(np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["pre"], name="stem", kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("Relu", ["pre"], ["post"], name="relu"),
        helper.make_node("GlobalAveragePool", ["post"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "stem", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], [weight, bias, head],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def test_an_imagenet_sized_conv_problem_is_never_dense(tmp_path):
    """3000 rows x 50,176 pixel units: dense would be 1.2 GB; the problem and the HiGHS model take a few MB."""
    _stem_model(tmp_path / "stem.onnx")
    layer = first_layer(load_model(tmp_path / "stem.onnx"))
    units = pixel_units(input_layout((1, 3, 224, 224)))
    x = np.random.default_rng(1).normal(size=layer.n_inputs)
    neurons = np.random.default_rng(2).choice(layer.n_neurons, size=3000, replace=False)
    tracemalloc.start()
    try:
        problem = smug_problem(layer, x, np.zeros_like(x), units, neurons, 0.5)
        saliency = base_saliency(layer, units, neurons, np.ones(layer.n_neurons))
        MilpModel(problem)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(problem.coefficients, sparse.csr_array)
    assert problem.coefficients.shape == (3000, 50_176)
    assert 3000 * 4 <= problem.coefficients.nnz <= 3000 * 9  # a 3x3 field covers 4 to 9 pixels
    assert saliency.shape == (50_176,)
    assert peak < 64 * 2**20, f"building took {peak / 2**20:.0f} MB of numpy memory"
    assert peak < problem_memory(3000, layer.receptive_field_size(), units.n_units)

"""Gradient graph vs finite differences vs numpy, on random small models and the real ones."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import REAL_MODELS
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from smugir import weights as smugir_weights
from smugir.convolution import conv_window
from smugir.errors import UnsupportedOpError
from smugir.firstlayer import first_layer
from smugir.gradients import FiniteDifferences, GradientGraph, gradient_model
from smugir.model import REORDERING_TOLERANCE, load_model, suffix_model, with_batch_of_one
from smugir.testing import GraphBuilder, random_weights

SMOOTH = ["Tanh", "Sigmoid", "SiLU"]
KINKED = ["Relu", "LeakyRelu", "Clip", "ClipNoMin", "HardSigmoid", "HardSwish"]


@st.composite
def op_models(draw):
    """x [1,C,H,W] -> ops drawn from the supported list -> logits [1,4] (optionally Softmax)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = GraphBuilder(rng)
    c, size = draw(st.integers(1, 3)), draw(st.integers(8, 10))  # conv output >= 2, so pools stay non-empty
    smooth = draw(st.booleans())
    act = lambda t: (_smooth(b, draw, t) if smooth else _kinked(b, draw, t))  # noqa: E731
    t = b.node("Mul", ["x", b.const(rng.uniform(0.5, 1.5, size=(1, c, 1, 1)).astype(np.float32))])
    t = b.node("Sub", [t, b.const(np.float32(0.1))])
    m = draw(st.integers(1, 3)) * (2 if draw(st.booleans()) else 1)
    group = 2 if (m % 2 == 0 and c == 2 and draw(st.booleans())) else 1
    if draw(st.booleans()):  # depthwise, as in EfficientNet and MobileNet
        m = group = c
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = [draw(st.integers(0, 1)) for _ in range(4)]
    t = b.node("Conv", [t, b.const(random_weights(rng, (m, c // group, k, k))), b.const(rng.normal(size=m).astype(np.float32))],
               kernel_shape=[k, k], strides=[s, s], dilations=[d, d], pads=pads, group=group)
    if draw(st.booleans()):
        scale, bias = rng.uniform(0.5, 2, m), rng.normal(size=m)
        mean, var = rng.normal(size=m), rng.uniform(0.5, 2, m)
        t = b.node("BatchNormalization", [t, *(b.const(v.astype(np.float32)) for v in (scale, bias, mean, var))])
    t = act(t)
    branch = draw(st.sampled_from(["none", "concat", "residual", "squeeze-excite"]))
    if branch == "concat":
        t = b.node("Concat", [t, b.node("Tanh", [t])], axis=1)
        m *= 2
    elif branch == "residual":
        t = b.node("Add", [t, b.node("Div", [b.node("Identity", [t]), b.const(np.float32(2.0))])])
    elif branch == "squeeze-excite":  # x * Sigmoid(Conv(mean over space of x)), broadcast over space
        if draw(st.booleans()):
            squeezed = b.node("GlobalAveragePool", [t])
        else:
            squeezed = b.node("ReduceMean", [t], axes=[2, 3], keepdims=1)
        gate = b.node("Conv", [squeezed, b.const(random_weights(rng, (m, m, 1, 1))), b.const(rng.normal(size=m).astype(np.float32))])
        t = b.node("Mul", [t, b.node(draw(st.sampled_from(["Sigmoid", "HardSigmoid"])), [gate])])
    if draw(st.booleans()):
        t = b.node("Pad", [t, b.const(np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64))])
    pool = draw(st.sampled_from(["MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean", "ReduceSum", "none"]))
    if pool in ("MaxPool", "AveragePool"):
        t = b.node(pool, [t], kernel_shape=[2, 2], strides=[1, 1])
    elif pool == "GlobalAveragePool":
        t = b.node(pool, [t])
    elif pool == "ReduceMean":
        keep = draw(st.booleans())
        t = b.node(pool, [t], axes=[3], keepdims=int(keep))
        t = t if keep else b.node("Unsqueeze", [t, b.const(np.array([3], np.int64))])
    elif pool == "ReduceSum":
        t = b.node(pool, [t, b.const(np.array([2], np.int64))], keepdims=1)
    t = b.node("Dropout", [b.node("Transpose", [t], perm=[0, 2, 3, 1])])
    t = b.node("Flatten", [t], axis=1) if draw(st.booleans()) else b.node("Reshape", [t, b.const(np.array([1, -1], np.int64))])
    proto = _finish(b, t, c, size, draw(st.booleans()), draw(st.booleans()))
    return proto


def _kinked(b, draw, t):
    op = draw(st.sampled_from(KINKED))
    if op == "Clip":
        return b.node("Clip", [t, b.const(np.float32(-1.0)), b.const(np.float32(2.0))])
    if op == "ClipNoMin":  # an empty min input, as exporters write ReLU6-like caps
        return b.node("Clip", [t, "", b.const(np.float32(1.5))])
    if op == "HardSigmoid":
        return b.node(op, [t], alpha=0.3, beta=0.4)
    return b.node(op, [t], **({"alpha": 0.2} if op == "LeakyRelu" else {}))


def _smooth(b, draw, t):
    op = draw(st.sampled_from(SMOOTH))
    if op == "SiLU":  # x * Sigmoid(x), how torch exports SiLU / Swish
        return b.node("Mul", [t, b.node("Sigmoid", [t])])
    return b.node(op, [t])


def _finish(b, t, c, size, matmul, softmax):
    """Append the dense head; shapes are inferred, so the feature count is read back."""
    probe = helper.make_graph(b.nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, size, size])],
                              [helper.make_tensor_value_info(t, TensorProto.FLOAT, None)], b.initializers)
    inferred = onnx.shape_inference.infer_shapes(helper.make_model(probe, opset_imports=[helper.make_opsetid("", 17)]))
    features = inferred.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    w = random_weights(b.rng, (features, 4))
    if matmul:
        out = b.node("Add", [b.node("MatMul", [t, b.const(w)]), b.const(np.zeros(4, np.float32))])
    else:
        out = b.node("Gemm", [t, b.const(w.T)], transB=1)
    if softmax:
        out = b.node("Softmax", [out], axis=1)
    graph = helper.make_graph(b.nodes, "ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, size, size])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 4])], b.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return onnx.shape_inference.infer_shapes(proto)


def _float64_logit(proto: onnx.ModelProto):
    """The model in float64 on onnx's reference evaluator: a reference without float32 noise."""
    from onnx.reference import ReferenceEvaluator

    double = onnx.ModelProto()
    double.CopyFrom(proto)
    for init in double.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(smugir_weights.array(init).astype(np.float64), init.name))
    for value in [*double.graph.input, *double.graph.output]:
        value.type.tensor_type.elem_type = TensorProto.DOUBLE
    del double.graph.value_info[:]
    reference = ReferenceEvaluator(double)
    softmax = proto.graph.node[-1].op_type == "Softmax"
    logits_name = proto.graph.node[-1].input[0] if softmax else proto.graph.output[0].name
    return lambda x, k: float(reference.run([logits_name], {"x": x[None]})[0][0, k])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proto=op_models(), seed=st.integers(0, 1000))
def test_gradient_graph_matches_finite_differences(proto, seed):
    """Every output of the float32 FD provider, and a float64 central difference on sampled inputs
    (a step of 1e-6 almost never crosses a ReLU kink, unlike float32 steps)."""
    shape = tuple(d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim)
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(2, *shape[1:]))
    values, exact = GradientGraph(proto, "x", "logit")(points, 1)
    fd_values, approx = FiniteDifferences(proto, "logit")(points, 1)
    # the gradient graph may run optimised, accepted at float32 rounding of the largest value (`equal_to_rounding`)
    np.testing.assert_allclose(values, fd_values, rtol=1e-5, atol=REORDERING_TOLERANCE * np.abs(fd_values).max())
    logit = _float64_logit(proto)
    step = 1e-6
    for point, gradient in zip(points, exact):
        flat = gradient.reshape(-1)
        scale = float(np.abs(flat).max()) + 1e-3
        for i in rng.choice(flat.size, size=min(12, flat.size), replace=False):
            bump = np.zeros(flat.size)
            bump[i] = step
            up, down = point + bump.reshape(point.shape), point - bump.reshape(point.shape)
            reference = (logit(up, 1) - logit(down, 1)) / (2 * step)
            assert flat[i] == pytest.approx(reference, rel=1e-3, abs=1e-4 * scale), (i, flat[i], reference)


@st.composite
def linear_convs(draw):
    """x [1, c, *spatial] -> Conv of any geometry (1-D or 2-D, strides up to 3 that skip input rows,
    dilations, explicit or SAME/VALID pads, groups with channel multipliers) -> Flatten -> Gemm."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = GraphBuilder(rng)
    dims, group = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2, 3]))
    c, m = group * draw(st.integers(1, 2)), group * draw(st.integers(1, 2))
    spatial = [draw(st.integers(4, 9)) for _ in range(dims)]
    attrs = dict(kernel_shape=[draw(st.integers(1, 4)) for _ in range(dims)], strides=[draw(st.integers(1, 3)) for _ in range(dims)],
                 group=group)
    if draw(st.booleans()):
        attrs["auto_pad"] = draw(st.sampled_from(["VALID", "SAME_UPPER", "SAME_LOWER"]))
    else:
        attrs["pads"] = [draw(st.integers(0, 2)) for _ in range(2 * dims)]
        attrs["dilations"] = [draw(st.integers(1, 2)) for _ in range(dims)]
    assume(all(i + sum(attrs.get("pads", [0, 0])[a::dims]) >= (k - 1) * d + 1 for a, (i, k, d) in
               enumerate(zip(spatial, attrs["kernel_shape"], attrs.get("dilations", [1] * dims)))))
    weight = random_weights(rng, (m, c // group, *attrs["kernel_shape"]))
    conv = b.node("Conv", ["x", b.const(weight)], **attrs)
    window = conv_window(b.nodes[-1], weight.shape, spatial)
    features = m * int(np.prod([(i + pb + pe - ((k - 1) * d + 1)) // s + 1 for i, k, s, d, pb, pe in zip(
        spatial, window.kernel, window.strides, window.dilations, window.pads_begin, window.pads_end)]))
    flat = b.node("Flatten", [conv], axis=1)
    logits = b.node("Gemm", [flat, b.const(rng.normal(size=(features, 2)).astype(np.float32))])
    return with_batch_of_one(b.model("x", ["N", c, *spatial], logits, 2)), (1, c, *spatial)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(built=linear_convs(), seed=st.integers(0, 1000))
def test_conv_gradient_is_the_exact_adjoint_of_the_conv(built, seed):
    """The logit is linear in x, so its gradient g must satisfy <g, x'> = logit(x') - logit(0) for
    every x': the adjoint identity, which checks each input element's gradient, the rows a stride
    skips and the pads, up to float32 rounding of the sums."""
    proto, shape = built
    rng = np.random.default_rng(seed)
    graph = GradientGraph(proto, "x", "logit")
    (_,), (gradient,) = graph(np.zeros((1, *shape[1:])), 1)
    probes = rng.normal(size=(4, *shape[1:]))
    values, _ = graph(np.concatenate([np.zeros((1, *shape[1:])), probes]), 1)
    for probe, value in zip(probes, values[1:]):
        scale = np.abs(gradient * probe).sum() + 1e-6
        assert float(np.sum(gradient * probe)) == pytest.approx(value - values[0], abs=1e-5 * scale + 1e-6)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proto=op_models(), seed=st.integers(0, 1000))
def test_probability_gradient_is_the_chain_rule_of_logit_gradients(proto, seed):
    """d p_c / dx = sum_j p_c (delta_cj - p_j) d z_j / dx, checked exactly on the graph's own logits."""
    shape = tuple(d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim)
    point = np.random.default_rng(seed).normal(size=(1, *shape[1:]))
    logit_graph = GradientGraph(proto, "x", "logit")
    logits, logit_grads = zip(*(logit_graph(point, j) for j in range(4)))
    z = np.array([v[0] for v in logits])
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    value, grad = GradientGraph(proto, "x", "probability")(point, 2)
    expected = sum(p[2] * ((j == 2) - p[j]) * logit_grads[j][0] for j in range(4))
    assert value[0] == pytest.approx(p[2], rel=1e-5)
    # p_c (1 - p_c) cancels in float32 when the softmax saturates: allow float32 eps times the logit gradients.
    floor = 4 * np.finfo(np.float32).eps * max(np.abs(g).max() for g in logit_grads)
    np.testing.assert_allclose(grad[0], expected, rtol=1e-3, atol=floor + 1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("name", sorted(REAL_MODELS))
def test_real_models_gradient_graph_is_batched_and_matches_fd(name):
    path, samples = REAL_MODELS[name]
    model = load_model(path)
    layer = first_layer(model)
    sub = with_batch_of_one(suffix_model(model.proto, layer.post_name))
    h = layer.activations(samples()[:2]).reshape(2, *layer.output_shape[1:])
    graph = GradientGraph(sub, layer.post_name, "logit")
    assert graph.batched
    _, exact = graph(h, 3)
    _, approx = FiniteDifferences(sub, "logit")(h[:1], 3)
    close = np.isclose(exact[:1], approx, rtol=1e-3, atol=1e-3 * np.abs(approx).max())
    assert close.mean() > 0.9


def test_mlp_gradient_equals_numpy():
    path, samples = REAL_MODELS["mnist-net_256x2"]
    model = load_model(path)
    layer = first_layer(model)
    weights = {t.name: smugir_weights.array(t).astype(np.float64) for t in model.proto.graph.initializer}
    h = layer.activations(samples()[0])
    w2, b2, w3, b3 = (weights[k] for k in ("layers.2.weight", "layers.2.bias", "layers.4.weight", "layers.4.bias"))
    z2 = w2 @ h + b2
    z3 = w3 @ np.maximum(z2, 0) + b3
    p = np.exp(z3 - z3.max())
    p /= p.sum()
    expected = w2.T @ ((z2 > 0) * (w3.T @ (p[5] * ((np.arange(10) == 5) - p))))
    _, grad = GradientGraph(with_batch_of_one(suffix_model(model.proto, layer.post_name)), layer.post_name)(h[None], 5)
    np.testing.assert_allclose(grad.reshape(-1), expected, rtol=1e-4, atol=1e-7)


def test_unsupported_op_is_named():
    b = GraphBuilder(np.random.default_rng(0))
    t = b.node("LpNormalization", ["x"])
    out = b.node("Gemm", [t, b.const(np.ones((3, 2), np.float32))])
    proto = b.model("x", [1, 3], out, 2)
    with pytest.raises(UnsupportedOpError, match=r"LpNormalization \(node 'LpNormalization_2'\) in the gradient graph"):
        gradient_model(with_batch_of_one(proto), "x")


def _rule_model(op: str, seed: int = 0) -> onnx.ModelProto:
    """x [1,2,8,8] -> Conv -> `op` -> dense head: one model per gradient rule, so each rule is checked."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(rng)
    depthwise = op == "DepthwiseConv"
    t = b.node("Conv", ["x", b.const(random_weights(rng, (2, 1 if depthwise else 2, 3, 3))), b.const(rng.normal(size=2).astype(np.float32))],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2 if depthwise else 1)
    if op == "HardSigmoid":
        t = b.node(op, [t], alpha=0.3, beta=0.4)
    elif op in ("HardSwish", "Sigmoid", "Tanh"):
        t = b.node(op, [t])
    elif op == "ClipInputs":
        t = b.node("Clip", [t, b.const(np.float32(0.0)), b.const(np.float32(6.0))])
    elif op == "ClipNoMin":
        t = b.node("Clip", [t, "", b.const(np.float32(0.5))])
    elif op == "SiLU":
        t = b.node("Mul", [t, b.node("Sigmoid", [t])])
    elif op == "BatchNormalization":
        t = b.node(op, [t, *(b.const(v.astype(np.float32)) for v in (rng.uniform(0.5, 2, 2), rng.normal(size=2), rng.normal(size=2), rng.uniform(0.5, 2, 2)))])
    elif op == "ReduceMean":
        t = b.node("Unsqueeze", [b.node(op, [t], axes=[-1], keepdims=0), b.const(np.array([3], np.int64))])
    elif op == "ReduceSum":
        t = b.node(op, [t, b.const(np.array([2], np.int64))], keepdims=1)
    elif op == "SqueezeExcite":
        gate = b.node("HardSigmoid", [b.node("Conv", [b.node("GlobalAveragePool", [t]), b.const(random_weights(rng, (2, 2, 1, 1)))])])
        t = b.node("Mul", [t, gate])
    t = b.node("Flatten", [b.node("Dropout", [t])], axis=1)
    return _finish(b, t, 2, 8, False, False)


@pytest.mark.parametrize("op", ["HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "ClipInputs", "ClipNoMin", "SiLU",
                                "BatchNormalization", "ReduceMean", "ReduceSum", "SqueezeExcite", "DepthwiseConv"])
def test_each_rule_matches_a_float64_central_difference(op):
    proto = _rule_model(op)
    rng = np.random.default_rng(1)
    points = rng.normal(size=(2, 2, 8, 8)) * 2
    graph = GradientGraph(proto, "x", "logit")
    assert graph.batched
    _, exact = graph(points, 2)
    logit, step = _float64_logit(proto), 1e-6
    for point, gradient in zip(points, exact):
        flat = gradient.reshape(-1)
        for i in rng.choice(flat.size, size=16, replace=False):
            bump = np.zeros(flat.size)
            bump[i] = step
            reference = (logit(point + bump.reshape(point.shape), 2) - logit(point - bump.reshape(point.shape), 2)) / (2 * step)
            assert flat[i] == pytest.approx(reference, rel=1e-3, abs=1e-4 * (float(np.abs(flat).max()) + 1e-3)), (op, i)


def test_optimised_sessions_are_judged_against_the_plain_ones_at_float32_rounding():
    """Values: a reordering's error (1e-7 of the largest value) passes even on values near zero,
    which a per-value relative test refuses; an error of 1e-3 of the scale, a changed shape or a
    NaN where there was none fails. Gradients: 1 % in L2 norm (kink flips) passes, 5 % fails."""
    from smugir.gradients.providers import _gradients_agree
    from smugir.model import equal_to_rounding

    rng = np.random.default_rng(0)
    slow = rng.normal(size=(3, 50)) * np.array([1e-6, 1.0, 5.0])[:, None]
    assert equal_to_rounding(slow + 1e-7 * np.abs(slow).max() * rng.normal(size=slow.shape), slow)
    assert not equal_to_rounding(slow + 1e-3 * np.abs(slow).max() * (rng.random(size=slow.shape) > 0.99), slow)
    assert not equal_to_rounding(slow[:2], slow)
    nan = slow.copy()
    nan[1, 3] = np.nan
    assert not equal_to_rounding(nan, slow) and equal_to_rounding(nan, nan)
    assert equal_to_rounding(np.zeros(4), np.zeros(4)) and not equal_to_rounding(np.full(4, 1e-30), np.zeros(4))
    grads = rng.normal(size=(2, 3, 8, 8))
    flipped = grads * (rng.random(size=grads.shape) > 1e-4)  # a kink flip switches a few paths off
    assert _gradients_agree(grads * (1 + 0.01 * rng.normal(size=grads.shape)), grads) and _gradients_agree(flipped, grads)
    assert not _gradients_agree(grads * 1.05, grads)
    assert not _gradients_agree(np.where(np.arange(grads.size).reshape(grads.shape) % 7 == 0, -grads, grads), grads)


def test_optimised_gradient_session_is_used_only_when_it_equals_the_plain_one():
    """The real models' gradient graphs get onnxruntime's optimised session (same values and
    gradients on the probe); a session that disagrees with the plain one is never used."""
    import onnxruntime as ort

    from smugir.gradients.providers import _agrees
    from smugir.model import make_session

    level = ort.GraphOptimizationLevel
    path, _ = REAL_MODELS["cifar10_small"]
    model = load_model(path)
    layer = first_layer(model)
    sub = with_batch_of_one(suffix_model(model.proto, layer.post_name))
    fast = GradientGraph(sub, layer.post_name)
    assert fast.session.get_session_options().graph_optimization_level == level.ORT_ENABLE_ALL
    shape = fast.shape
    logit_plain = make_session(gradient_model(sub, layer.post_name, "logit"))
    probe = np.random.default_rng(1).normal(size=(2, *shape[1:])).astype(np.float32)
    reference = [logit_plain.run(None, {layer.post_name: p[None], "smugir_class_index": np.array([0])}) for p in probe]
    assert _agrees(fast.session, [fast.session.run(None, {layer.post_name: p[None], "smugir_class_index": np.array([0])}) for p in probe],
                   layer.post_name, probe, fast.batched)
    wrong = make_session(gradient_model(sub, layer.post_name, "probability"), optimize=True)
    assert not _agrees(wrong, reference, layer.post_name, probe, False)  # it computes something else: never used


def test_a_graph_that_cannot_batch_gets_no_batched_gradient_session(monkeypatch):
    """A Reshape to a fixed leading size (Swin's window attention) cannot take a dynamic batch: the
    forward graph tells so in one session, and no batched gradient session is built (on a
    TorchScript Swin-T two of those took 24 s to fail). The gradients are still right."""
    from smugir.gradients import providers

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["h", "s22"], ["r"]), helper.make_node("Reshape", ["r", "s14"], ["back"]),
         helper.make_node("MatMul", ["back", "w"], ["logits"])],
        "windows", [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.array([2, 2], np.int64), "s22"), numpy_helper.from_array(np.array([1, 4], np.int64), "s14"),
         numpy_helper.from_array(w, "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    made = []
    real = providers.make_session
    monkeypatch.setattr(providers, "make_session", lambda p, optimize=False: made.append(optimize) or real(p, optimize))
    gradient = GradientGraph(proto, "h", "logit")
    assert not gradient.batched and len(made) == 3  # plain, the forward graph batched, the optimised unbatched one
    h = rng.normal(size=(1, 4)).astype(np.float32)
    _, grads = gradient(h, 1)
    assert np.allclose(grads.reshape(-1), w[:, 1], atol=1e-6)


def test_finite_difference_fallback_names_the_op_and_node(tmp_path):
    """A model whose gradient graph cannot be built falls back to finite differences, and the
    provider's name (what IG results and report.json record) says which op and node needed it."""
    from smugir.attribution import forget_providers, provider_for

    rng = np.random.default_rng(0)
    b = GraphBuilder(rng)
    hidden = b.node("Relu", [b.node("Gemm", ["x", b.const(rng.normal(size=(4, 6)).astype(np.float32))])])
    out = b.node("Gemm", [b.node("LpNormalization", [hidden]), b.const(rng.normal(size=(6, 3)).astype(np.float32))])
    path = tmp_path / "lp.onnx"
    onnx.save(b.model("x", [1, 4], out, 3), path)
    model = load_model(path)
    layer = first_layer(model)
    provider = provider_for(model, layer.post_name, "logit")
    assert provider.name == "finite-differences (no gradient graph: LpNormalization node 'LpNormalization_7')"
    forget_providers(model)

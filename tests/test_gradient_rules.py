"""Every gradient rule against float64 central finite differences, on random shapes and attributes
(hypothesis), one test per op family; and a wrong rule must fail the same check."""

from __future__ import annotations

import numpy as np
import pytest
from gradient_checks import Net, gradient_error, typed_model
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from onnx import TensorProto, helper

from smugir.gradients import CLASS_INPUT, RULES, gradient_model
from smugir.model import make_session

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
seeds = st.integers(0, 2**32 - 1)


def _shape(draw, rank_min=1, rank_max=4, dim_max=4):
    return tuple(draw(st.integers(1, dim_max)) for _ in range(draw(st.integers(rank_min, rank_max))))


def _broadcast_partner(draw, shape):
    """A shape that broadcasts to `shape`: leading axes dropped, some axes set to 1."""
    kept = shape[draw(st.integers(0, len(shape))):]
    return tuple(1 if draw(st.booleans()) else d for d in kept)


def _assert(check, what):
    assert check.ok, f"{what}: error {check.error:.3g} > {check.tolerance} ({check.dtype})"


# ---- arithmetic and elementwise -------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), seed=seeds, op=st.sampled_from(["Add", "Sub", "Mul", "Div", "Pow", "PowConst", "Max", "Min", "Sum", "Where"]))
def test_broadcasting_binary_rules(data, seed, op):
    draw = data.draw
    net = Net(np.random.default_rng(seed))
    shape = _shape(draw)
    other = _broadcast_partner(draw, shape)
    a, c = (net.input(shape), net.input(other)) if draw(st.booleans()) else (net.input(other), net.input(shape))
    if op == "Div":  # divisor kept away from 0
        out = net.node("Div", [a, net.node("Add", [net.node("Exp", [c]), net.const(0.5)])])
    elif op == "Pow":  # both operands vary, positive base
        out = net.node("Pow", [net.node("Exp", [a]), c])
    elif op == "PowConst":  # x^2 (LayerNorm written out), x^3, sqrt-like powers of a positive base
        exponent = draw(st.sampled_from([2.0, 3.0, 0.5, -1.5]))
        base = a if exponent in (2.0, 3.0) else net.node("Exp", [a])
        out = net.node("Pow", [base, net.const(np.float64(exponent))])
    elif op in ("Max", "Min", "Sum"):
        extra = [net.input(_broadcast_partner(draw, shape))] if draw(st.booleans()) else []
        out = net.node(op, [a, c, *extra])
    elif op == "Where":
        condition = net.const(net.rng.random(size=_broadcast_partner(draw, shape)) > 0.5)
        out = net.node("Where", [condition, a, c])
    else:
        out = net.node(op, [a, c])
    _assert(gradient_error(net, out, seed), op)


UNARY = ["Neg", "Abs", "Reciprocal", "Sqrt", "Exp", "Log", "Erf", "Sin", "Cos", "Identity", "Dropout"]
POSITIVE = {"Reciprocal", "Sqrt", "Log"}


@SETTINGS
@given(data=st.data(), seed=seeds, op=st.sampled_from(UNARY))
def test_unary_rules(data, seed, op):
    net = Net(np.random.default_rng(seed))
    x = net.input(_shape(data.draw))
    if op in POSITIVE:
        x = net.node("Add", [net.node("Exp", [x]), net.const(0.1)])
    _assert(gradient_error(net, net.node(op, [x]), seed), op)


# ---- activations -----------------------------------------------------------------------------------
ACTIVATIONS = ["Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "Tanh", "Softplus", "Softsign", "Mish",
               "Gelu", "GeluTanh", "Clip", "ClipNoMin", "HardSigmoid", "HardSwish"]


@SETTINGS
@given(data=st.data(), seed=seeds, op=st.sampled_from(ACTIVATIONS))
def test_activation_rules(data, seed, op):
    draw = data.draw
    net = Net(np.random.default_rng(seed), opset=20 if op.startswith("Gelu") else 18 if op == "Mish" else 17)
    shape = _shape(draw)
    x = net.node("Mul", [net.input(shape), net.const(np.float64(3.0))])  # reach every branch
    alpha = draw(st.floats(0.05, 1.5))
    if op == "PRelu":
        out = net.node(op, [x, net.const(net.rng.uniform(0.05, 0.5, size=_broadcast_partner(draw, shape)))])
    elif op in ("LeakyRelu", "Elu", "Celu"):
        out = net.node(op, [x], alpha=alpha)
    elif op == "HardSigmoid":
        out = net.node(op, [x], alpha=alpha / 3, beta=draw(st.floats(0.2, 0.8)))
    elif op == "GeluTanh":
        out = net.node("Gelu", [x], approximate="tanh")
    elif op == "Clip":
        out = net.node(op, [x, net.const(np.float64(-1.0)), net.const(np.float64(2.0))])
    elif op == "ClipNoMin":
        out = net.node("Clip", [x, "", net.const(np.float64(1.5))])
    else:
        out = net.node(op, [x])
    _assert(gradient_error(net, out, seed), op)


# ---- linear ----------------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), seed=seeds)
def test_matmul_rule_with_any_operands(data, seed):
    """Both operands activations (attention), or one constant; batch broadcasting; 1-D operands."""
    draw = data.draw
    net = Net(np.random.default_rng(seed))
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    batch = _shape(draw, 0, 2, 3)
    left = (k,) if draw(st.booleans()) and not batch else (*_broadcast_partner(draw, batch), m, k)
    right = (k,) if draw(st.booleans()) and len(left) > 1 else (*_broadcast_partner(draw, batch), k, n)
    constant = draw(st.sampled_from(["none", "left", "right"]))
    a = net.const(net.rng.normal(size=left)) if constant == "left" else net.input(left)
    b = net.const(net.rng.normal(size=right)) if constant == "right" else net.input(right)
    _assert(gradient_error(net, net.node("MatMul", [a, b]), seed), f"MatMul {left} x {right}, constant {constant}")


@SETTINGS
@given(data=st.data(), seed=seeds)
def test_gemm_rule(data, seed):
    draw = data.draw
    net = Net(np.random.default_rng(seed))
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    trans_a, trans_b = draw(st.booleans()), draw(st.booleans())
    a = net.input((k, m) if trans_a else (m, k))
    b = net.input((n, k) if trans_b else (k, n)) if draw(st.booleans()) else net.const(net.rng.normal(size=(n, k) if trans_b else (k, n)))
    inputs = [a, b]
    if draw(st.booleans()):
        inputs.append(net.input(draw(st.sampled_from([(n,), (1, n), (m, n), (m, 1)]))))
    out = net.node("Gemm", inputs, transA=int(trans_a), transB=int(trans_b), alpha=draw(st.floats(0.5, 2)), beta=draw(st.floats(0.5, 2)))
    _assert(gradient_error(net, out, seed), "Gemm")


EINSUMS = ["bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd", "ij,jk->ik", "bij->bji", "...ij,...jk->...ik", "bi,bi->b", "ij,j->i",
           "i,j->ij", "ij->", "ijk,ik->ij", "ij,jk", "bnd,d->bn"]


@SETTINGS
@given(data=st.data(), seed=seeds, equation=st.sampled_from(EINSUMS))
def test_einsum_rule(data, seed, equation):
    draw = data.draw
    net = Net(np.random.default_rng(seed))
    sizes = {c: draw(st.integers(1, 3)) for c in "bhqdkijn"}
    ellipsis = _shape(draw, 0, 2, 3)
    operands = []
    for term in equation.split("->")[0].split(","):
        shape = (*ellipsis, *(sizes[c] for c in term.replace("...", ""))) if "..." in term else tuple(sizes[c] for c in term)
        operands.append(net.const(net.rng.normal(size=shape)) if len(operands) and draw(st.booleans()) and equation.count(",") else net.input(shape))
    _assert(gradient_error(net, net.node("Einsum", operands, equation=equation), seed), equation)


# ---- pooling ---------------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), seed=seeds, op=st.sampled_from(["MaxPool", "AveragePool", "AveragePoolExcludePad", "GlobalAveragePool", "GlobalMaxPool"]))
def test_pooling_rules(data, seed, op):
    draw = data.draw
    net = Net(np.random.default_rng(seed))
    spatial = [draw(st.integers(3, 6)) for _ in range(draw(st.integers(1, 2)))]
    x = net.input((1, draw(st.integers(1, 3)), *spatial))
    if op.startswith("Global"):
        out = net.node(op, [x])
    else:
        kernel = [draw(st.integers(1, 3)) for _ in spatial]
        attrs = dict(kernel_shape=kernel, strides=[draw(st.integers(1, 2)) for _ in spatial],
                     pads=[draw(st.integers(0, k // 2)) for k in kernel * 2])
        if op == "MaxPool" and draw(st.booleans()):  # GoogLeNet's pools; every window starts inside (as torch exports)
            attrs["ceil_mode"] = 1
            n = len(spatial)
            assume(all(-(-(i + attrs["pads"][a] + attrs["pads"][a + n] - k) // s) * s < i + attrs["pads"][a]
                       for a, (i, k, s) in enumerate(zip(spatial, kernel, attrs["strides"]))))
        if op == "AveragePool":
            attrs["count_include_pad"] = 1
        out = net.node("AveragePool" if op.startswith("AveragePool") else op, [x], **attrs)
    _assert(gradient_error(net, out, seed), op)


# ---- normalisation ---------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), seed=seeds, op=st.sampled_from(["LayerNormalization", "WrittenOut", "InstanceNormalization", "BatchNormalization"]))
def test_normalization_rules(data, seed, op):
    """LayerNorm over any axis (negative too), with scale and bias constant or learned-like inputs;
    the form torch writes at opset < 17 (ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div)."""
    draw = data.draw
    net = Net(np.random.default_rng(seed), opset=draw(st.sampled_from([17, 18])))
    if op in ("LayerNormalization", "WrittenOut"):
        shape = _shape(draw, 2, 4)
    else:  # (N, C, spatial...), planes of 4 or more (of 1, x - mean is 0 whatever x; of 2, y is +-1 nearly everywhere)
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(4, 5)), *([draw(st.integers(1, 3))] if draw(st.booleans()) else []))
    x = net.input(shape)
    rank = len(shape)
    if op in ("LayerNormalization", "WrittenOut"):
        axis = draw(st.integers(-rank + 1, rank - 1))
        normalised = shape[axis % rank:]
        if op == "WrittenOut":
            axes = list(range(axis % rank, rank))
            mean = _reduce_mean(net, x, axes)
            centred = net.node("Sub", [x, mean])
            var = _reduce_mean(net, net.node("Pow", [centred, net.const(np.float64(2.0))]), axes)
            out = net.node("Div", [centred, net.node("Sqrt", [net.node("Add", [var, net.const(np.float64(1e-5))])])])
            out = net.node("Add", [net.node("Mul", [out, net.const(net.rng.normal(size=normalised[-1:]))]), net.const(np.zeros(normalised[-1:]))])
        else:
            scale = net.input(normalised) if draw(st.booleans()) else net.const(net.rng.normal(size=normalised))
            bias = net.input(normalised[-1:]) if draw(st.booleans()) else net.const(net.rng.normal(size=normalised))
            out = net.node(op, [x, scale, bias], axis=axis, epsilon=draw(st.sampled_from([1e-5, 1e-6, 0.1])))
    else:
        channels = shape[1]
        params = [net.rng.uniform(0.5, 2, channels), net.rng.normal(size=channels)]
        if op == "BatchNormalization":
            params += [net.rng.normal(size=channels), net.rng.uniform(0.5, 2, channels)]
        out = net.node(op, [x, *(net.const(p) for p in params)])
    _assert(gradient_error(net, out, seed), op)


def _reduce_mean(net, x, axes):
    if net.opset >= 18:
        return net.node("ReduceMean", [x, net.ints(axes)], keepdims=1)
    return net.node("ReduceMean", [x], axes=axes, keepdims=1)


# ---- reductions ------------------------------------------------------------------------------------
REDUCTIONS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp"]


@SETTINGS
@given(data=st.data(), seed=seeds, op=st.sampled_from(REDUCTIONS), opset=st.sampled_from([17, 18]))
def test_reduction_rules(data, seed, op, opset):
    """Axes negative or not, as attribute (opset 17) or input, none (all axes), keepdims both ways."""
    draw = data.draw
    net = Net(np.random.default_rng(seed), opset=opset)
    shape = _shape(draw)
    rank = len(shape)
    axes = sorted(set(draw(st.lists(st.integers(-rank, rank - 1), max_size=rank))), key=lambda a: a % rank)
    axes = list({a % rank: a for a in axes}.values())
    keepdims = int(draw(st.booleans()))
    x = net.input(shape)
    if op == "ReduceL1":
        x = net.node("Add", [x, net.const(np.float64(0.01))])
    if not axes:
        out = net.node(op, [x], keepdims=keepdims)
    elif op == "ReduceSum" or opset >= 18:
        out = net.node(op, [x, net.ints(axes)], keepdims=keepdims)
    else:
        out = net.node(op, [x], axes=axes, keepdims=keepdims)
    _assert(gradient_error(net, out, seed), f"{op} axes {axes} keepdims {keepdims}")


# ---- shape and indexing ----------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), seed=seeds, op=st.sampled_from(["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Tile",
                                                        "Concat", "Shuffle"]))
def test_layout_rules(data, seed, op):
    draw = data.draw
    net = Net(np.random.default_rng(seed))
    shape = _shape(draw)
    rank = len(shape)
    x = net.input(shape)
    if op == "Reshape":
        out = net.node(op, [x, net.ints([-1, shape[-1]])])
    elif op == "Flatten":
        out = net.node(op, [x], axis=draw(st.integers(-rank, rank)))
    elif op == "Squeeze":
        x = net.node("Unsqueeze", [x, net.ints([0])])
        out = net.node(op, [x, net.ints([0])])
    elif op == "Unsqueeze":
        out = net.node(op, [x, net.ints([draw(st.integers(-rank - 1, rank))])])
    elif op == "Transpose":
        out = net.node(op, [x], perm=list(draw(st.permutations(range(rank)))))
    elif op == "Expand":  # as a class token is expanded over the batch
        small = _broadcast_partner(draw, shape)
        out = net.node(op, [net.input(small), net.ints(list(shape))])
    elif op == "Tile":
        out = net.node(op, [x, net.ints([draw(st.integers(1, 3)) for _ in shape])])
    elif op == "Concat":
        axis = draw(st.integers(-rank, rank - 1))
        other = list(shape)
        other[axis] = draw(st.integers(1, 3))
        parts = [x, net.input(other), net.const(net.rng.normal(size=other))]
        out = net.node(op, [parts[i] for i in draw(st.permutations(range(3)))], axis=axis)
    else:  # ShuffleNet's channel shuffle: Reshape (N, g, C/g, H, W), Transpose, Reshape back
        groups, per, h = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        x = net.input((1, groups * per, h, 2))
        split = net.node("Reshape", [x, net.ints([1, groups, per, h, 2])])
        out = net.node("Reshape", [net.node("Transpose", [split], perm=[0, 2, 1, 3, 4]), net.ints([1, -1, h, 2])])
    _assert(gradient_error(net, out, seed), op)


@SETTINGS
@given(data=st.data(), seed=seeds, op=st.sampled_from(["Gather", "GatherScalar", "GatherElements", "Slice", "Split", "Pad", "DepthToSpace",
                                                        "SpaceToDepth"]))
def test_selection_rules(data, seed, op):
    """Gather over any axis with negative and repeated indices (a class token, embedding rows),
    strided and reversed Slices, Split into given sizes with outputs left unread, Pad modes."""
    draw = data.draw
    net = Net(np.random.default_rng(seed), opset=18)
    shape = _shape(draw)
    rank = len(shape)
    axis = draw(st.integers(-rank, rank - 1))
    size = shape[axis]
    x = net.input(shape)
    outputs = None
    if op == "Gather":
        indices = net.rng.integers(-size, size, size=_shape(draw, 1, 2, 3))
        out = net.node(op, [x, net.ints(indices)], axis=axis)
    elif op == "GatherScalar":  # x[:, 0] as ViT reads its class token
        out = net.node("Gather", [x, net.const(np.int64(draw(st.integers(-size, size - 1))))], axis=axis)
    elif op == "GatherElements":
        index_shape = list(shape)
        index_shape[axis] = draw(st.integers(1, 3))
        out = net.node(op, [x, net.ints(net.rng.integers(-size, size, size=index_shape))], axis=axis)
    elif op == "Slice":
        step = draw(st.sampled_from([1, 1, 2, 3, -1, -2]))
        start, end = draw(st.integers(-size - 1, size + 1)), draw(st.integers(-size - 1, size + 1))
        if step < 0:
            start, end = max(start, end), min(start, end)
        assume(np.arange(size)[start:end:step].size > 0)  # classifiers hold no empty tensors
        out = net.node(op, [x, net.ints([start]), net.ints([end]), net.ints([axis]), net.ints([step])])
        if step == 1 and draw(st.booleans()):  # no steps input
            net.nodes[-1].input.pop()
    elif op == "Split":
        cuts = sorted(set(draw(st.lists(st.integers(1, size - 1), max_size=3)))) if size > 1 else []
        sizes = np.diff([0, *cuts, size])
        parts = net.node(op, [x, net.ints(sizes)], outputs=len(sizes), axis=axis)
        parts = parts if isinstance(parts, list) else [parts]
        outputs = [p for p in parts if draw(st.booleans())] or parts[:1]
        out = None
    elif op == "Pad":
        mode = draw(st.sampled_from(["constant", "reflect", "edge"]))
        low = 0 if mode != "constant" else -1
        pads = [draw(st.integers(low if d > 1 else 0, min(2, d - 1) if mode == "reflect" else 2)) for d in shape * 2]
        out = net.node(op, [x, net.ints(pads)], mode=mode)
        if mode == "constant" and all(p >= 0 for p in pads):
            net.nodes[-1].input.append(net.const(np.float64(0.5)))
    else:
        block = draw(st.integers(1, 2))
        channels, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
        if op == "DepthToSpace":
            x = net.input((1, channels * block * block, h, w))
            out = net.node(op, [x], blocksize=block, mode=draw(st.sampled_from(["DCR", "CRD"])))
        else:
            x = net.input((1, channels, h * block, w * block))
            out = net.node(op, [x], blocksize=block)
    _assert(gradient_error(net, outputs or out, seed), op)


# ---- softmax ---------------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), seed=seeds, op=st.sampled_from(["Softmax", "LogSoftmax"]))
def test_softmax_rules(data, seed, op):
    draw = data.draw
    net = Net(np.random.default_rng(seed))
    shape = _shape(draw)
    out = net.node(op, [net.input(shape)], axis=draw(st.integers(-len(shape), len(shape) - 1)))
    _assert(gradient_error(net, out, seed), op)


# ---- a wrong rule fails ----------------------------------------------------------------------------
def _attention(seed):
    """softmax(q k^T / sqrt d) v over LayerNorm'd tokens with a GELU MLP: a transformer block in little."""
    net = Net(np.random.default_rng(seed), opset=20)
    tokens = net.node("LayerNormalization", [net.input((1, 3, 4)), net.const(np.ones(4)), net.const(np.zeros(4))], axis=-1)
    q, k, v = (net.node("MatMul", [tokens, net.const(net.rng.normal(size=(4, 4)))]) for _ in range(3))
    scores = net.node("Softmax", [net.node("Div", [net.node("MatMul", [q, net.node("Transpose", [k], perm=[0, 2, 1])]), net.const(np.float64(2.0))])], axis=-1)
    mixed = net.node("MatMul", [scores, v])
    out = net.node("Gelu", [net.node("Add", [mixed, tokens])])
    return net, net.node("Gather", [out, net.const(np.int64(0))], axis=1)


def test_a_transformer_block_matches_finite_differences():
    net, out = _attention(0)
    _assert(gradient_error(net, out, 0), "attention block")


@pytest.mark.parametrize("op, wrong", [
    ("Sigmoid", "Tanh"),  # a neighbouring activation's rule
    ("Gelu", "Relu"),
    ("MatMul", "Mul"),
    ("Softmax", "LogSoftmax"),
    ("LayerNormalization", "BatchNormalization"),
])
def test_a_wrong_rule_fails_the_check(monkeypatch, op, wrong):
    """Swap a rule for another op's: the same finite-difference check must fail (or the rule refuse)."""
    net, out = _attention(1)
    if op == "Sigmoid":
        net = Net(np.random.default_rng(1))
        out = net.node("Sigmoid", [net.input((2, 3))])
    monkeypatch.setitem(RULES, op, RULES[wrong])
    try:
        check = gradient_error(net, out, 1)
    except Exception:  # noqa: BLE001 (the wrong rule cannot even build a graph: also a failure)
        return
    assert not check.ok, f"{op} with {wrong}'s rule passed: error {check.error}"


def _scaled(rule, factor):
    """`rule` with every gradient it returns off by `factor`."""
    def wrong(b, node, g, need):
        return {x: b.add("Mul", [grad, b.const(factor)]) for x, grad in rule(b, node, g, need).items()}
    return wrong


@pytest.mark.parametrize("op, factor", [("LayerNormalization", 1.01), ("MatMul", 1.01), ("Gelu", 1.01), ("Gather", 1.01), ("Add", 1.01),
                                        ("Softmax", 1.1), ("Transpose", 1.1)])  # the scores' path carries less of the gradient
def test_a_rule_slightly_off_fails_the_check(monkeypatch, op, factor):
    """The tolerance is tight enough: a rule 1 % off somewhere in the attention block is caught
    (10 % on the attention scores' path, which the residual connection outweighs)."""
    net, out = _attention(2)
    monkeypatch.setitem(RULES, op, _scaled(RULES[op], factor))
    check = gradient_error(net, out, 2)
    assert not check.ok, f"{op} 1 % off passed: error {check.error}"


# ---- float32 conditioning --------------------------------------------------------------------------
# Smooth activations whose derivative, written from the output (1 - tanh^2, y + alpha), cancels
# where they saturate: float32 keeps 7 digits of y, not of 1 - y. Sigmoid's rule keeps y (1 - y),
# as exact as onnxruntime's Sigmoid (1e-7 absolute): its floor, as a share of the largest slope.
# Gelu's exact form is left out, as are Celu and Erf: onnxruntime has no float64 kernel for them.
SATURATING = ["Sigmoid", "Tanh", "Softplus", "Softsign", "Mish", "Elu", "Selu", "GeluTanh", "Exp"]
ABSOLUTE_FLOOR = {"Sigmoid": 2e-6}


@pytest.mark.parametrize("op", SATURATING)
def test_activation_derivatives_keep_float32_precision_where_they_saturate(op):
    """The float32 gradient graph against the float64 one on x in [-12, 12]: each element to 1e-5
    relative (a few float32 roundings), down to float32's smallest normal number."""
    net = Net(np.random.default_rng(0), opset=20 if op.startswith("Gelu") else 18)
    points = np.arange(-12, 12.01, 0.25)
    x = net.input((points.size,))
    out = net.node("Gelu", [x], approximate="tanh") if op == "GeluTanh" else net.node(op, [x])
    double = net.model(out)
    grads = {}
    for dtype in (TensorProto.DOUBLE, TensorProto.FLOAT):
        proto = double if dtype == TensorProto.DOUBLE else typed_model(net, double.graph.output[0].name, dtype)
        session = make_session(gradient_model(proto, "x", "logit"))
        feed = {"x": points[None].astype(helper.tensor_dtype_to_np_dtype(dtype)), CLASS_INPUT: np.array([1])}
        grads[dtype] = np.asarray(session.run(None, feed)[1], dtype=np.float64).reshape(-1)
    exact, single = grads[TensorProto.DOUBLE], grads[TensorProto.FLOAT]
    tolerance = 1e-5 * np.abs(exact) + ABSOLUTE_FLOOR.get(op, 0.0) * np.abs(exact).max() + np.finfo(np.float32).tiny
    error = np.abs(single - exact) / tolerance
    worst = int(error.argmax())
    assert error[worst] <= 1, f"{op} at x = {points[worst]}: {single[worst]:.7g} in float32, {exact[worst]:.7g} in float64"

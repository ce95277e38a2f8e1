"""Constant subgraphs folded at load time, and the reader's refusals: each one line, exit code 2."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from smugir.attribution import provider_for
from smugir.cli import main
from smugir.errors import UnsupportedModelError
from smugir.firstlayer import first_layer
from smugir.folding import ConstantFoldingError, check_against_onnxruntime, fold_constants
from smugir.model import load_model, make_session
from smugir.testing import GraphBuilder, random_weights


def _model(b: GraphBuilder, t: str, tmp_path, input_shape=(1, 2, 5, 5), opset=17, name="m.onnx", conv=True):
    """... t -> Conv(2 -> 3, 3x3) or Flatten+Gemm -> Relu -> GlobalAveragePool/Flatten -> Gemm(3 -> 2)."""
    if conv:
        pre = b.node("Conv", [t, b.const(random_weights(b.rng, (3, input_shape[1], 3, 3)))], kernel_shape=[3, 3])
        flat = b.node("Flatten", [b.node("GlobalAveragePool", [b.node("Relu", [pre])])], axis=1)
    else:
        pre = b.node("Gemm", [b.node("Flatten", [t], axis=1), b.const(random_weights(b.rng, (3, int(np.prod(input_shape[1:])))))], transB=1)
        flat = b.node("Relu", [pre])
    out = b.node("Gemm", [flat, b.const(random_weights(b.rng, (2, 3)))], transB=1)
    graph = helper.make_graph(b.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [input_shape[0], 2])], b.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    path = tmp_path / name
    onnx.save(proto, path)
    return path


def _refused(capsys, path, *fragments):
    code = main(["inspect", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _int64(b, values):
    return b.const(np.array(values, np.int64))


def test_constant_of_shape_bomb_is_refused_before_it_allocates(tmp_path, capsys):
    b = GraphBuilder(np.random.default_rng(0))
    bomb = b.node("ConstantOfShape", [_int64(b, [100000, 100000])], value=numpy_helper.from_array(np.array([0.0], np.float32)))
    small = b.node("Slice", [bomb, _int64(b, [0, 0]), _int64(b, [1, 1])])  # a 1x1 zero, 40 GB away
    t = b.node("Add", ["x", small])
    _refused(capsys, _model(b, t, tmp_path), "ConstantOfShape", "[100000, 100000]", "at most")


def test_folding_stays_within_the_memory_budget(tmp_path, capsys):
    """A 4 MB constant is below folding's own cap but over --max-memory 1M: refused by the budget."""
    b = GraphBuilder(np.random.default_rng(0))
    big = b.node("ConstantOfShape", [_int64(b, [1000, 1000])], value=numpy_helper.from_array(np.array([0.0], np.float32)))
    t = b.node("Add", ["x", b.node("Slice", [big, _int64(b, [0, 0]), _int64(b, [1, 1])])])
    path = _model(b, t, tmp_path)
    assert main(["inspect", str(path), "--max-memory", "1M"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ConstantOfShape" in err and "[1000, 1000]" in err and "--max-memory" in err, err
    assert main(["inspect", str(path)]) == 0


@pytest.mark.parametrize("op", ["Expand", "Tile"])
def test_expand_and_tile_bombs_are_refused(tmp_path, capsys, op):
    b = GraphBuilder(np.random.default_rng(0))
    one = b.const(np.zeros((1, 1), np.float32))
    big = b.node(op, [one, _int64(b, [60000, 60000])])
    t = b.node("Add", ["x", b.node("ReduceMax", [big], keepdims=1)])
    _refused(capsys, _model(b, t, tmp_path), op, "[60000, 60000]")


def test_reflect_pad_is_refused_with_node_and_mode(tmp_path, capsys):
    b = GraphBuilder(np.random.default_rng(0))
    t = b.node("Pad", ["x", _int64(b, [0, 0, 1, 1, 0, 0, 1, 1])], mode="reflect")
    _refused(capsys, _model(b, t, tmp_path), "Pad node 'Pad_", "mode 'reflect'")


def test_pads_computed_from_the_data_values_are_refused(tmp_path, capsys):
    b = GraphBuilder(np.random.default_rng(0))
    amount = b.node("Cast", [b.node("ReduceMax", ["x"], keepdims=0)], to=TensorProto.INT64)
    pads = b.node("Concat", [_int64(b, [0, 0, 0, 0, 0, 0]), b.node("Unsqueeze", [amount, _int64(b, [0])]), _int64(b, [0])], axis=0)
    t = b.node("Pad", ["x", pads])
    _refused(capsys, _model(b, t, tmp_path), "unsupported op ReduceMax", "'ReduceMax_2'", "right after the data input")


def test_input_times_itself_is_refused(tmp_path, capsys):
    b = GraphBuilder(np.random.default_rng(0))
    _refused(capsys, _model(b, b.node("Mul", ["x", "x"]), tmp_path), "combines the input with itself")


def test_same_padding_with_dilation_is_refused_at_load(tmp_path, capsys):
    b = GraphBuilder(np.random.default_rng(0))
    t = b.node("Conv", ["x", b.const(random_weights(b.rng, (2, 2, 3, 3)))], kernel_shape=[3, 3], dilations=[2, 2], auto_pad="SAME_UPPER")
    _refused(capsys, _model(b, t, tmp_path), "auto_pad SAME_UPPER with dilations [2, 2]")


def test_matmul_with_a_broadcasting_bias_is_read_as_it_is(tmp_path, capsys):
    """A (10, 1) 'bias' after MatMul broadcasts the row to 10 rows: not a bias, so the pre-activation is the MatMul's."""
    b = GraphBuilder(np.random.default_rng(0))
    pre = b.node("MatMul", ["x", b.const(random_weights(b.rng, (4, 3)))])
    out = b.node("MatMul", [b.node("Relu", [b.node("Add", [pre, b.const(np.ones((10, 1), np.float32))])]), b.const(random_weights(b.rng, (3, 2)))])
    graph = helper.make_graph(b.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [10, 2])], b.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(proto, tmp_path / "m.onnx")
    layer = first_layer(load_model(tmp_path / "m.onnx"))
    assert layer.pre_name == pre and layer.activation.kind == "none" and layer.folded_after == ()
    assert main(["inspect", str(tmp_path / "m.onnx")]) == 0


def test_a_folded_model_that_disagrees_with_onnxruntime_is_not_trusted(tmp_path):
    b = GraphBuilder(np.random.default_rng(0))
    t = b.node("Add", ["x", b.node("Mul", [b.const(np.float32(2.0)), b.const(np.float32(3.0))])])
    proto = onnx.load(_model(b, t, tmp_path))
    folded, report = fold_constants(proto, "x", make_session)
    assert report.folded_nodes == 1 and report.checked
    for tensor in folded.graph.initializer:
        if tensor.dims == [] and numpy_helper.to_array(tensor) == 6.0:
            tensor.CopyFrom(numpy_helper.from_array(np.array(7.0, np.float32), tensor.name))
    with pytest.raises(ConstantFoldingError, match="changed the output"):
        check_against_onnxruntime(proto, folded, "x", make_session, batch_dynamic=False)


def test_folding_evaluates_each_node_at_the_models_opset(tmp_path):
    """Unsqueeze takes its axes as an attribute before opset 13: the evaluator must use opset 11 here."""
    b = GraphBuilder(np.random.default_rng(0))
    shape = b.node("Concat", [b.node("Unsqueeze", [b.const(np.array(-1, np.int64))], axes=[0]), _int64(b, [1, 5, 5])], axis=0)
    t = b.node("Reshape", ["x", shape])
    model = load_model(_model(b, t, tmp_path, input_shape=(1, 1, 5, 5), opset=11))
    assert model.folding.folded_nodes == 2 and {n.op_type for n in model.proto.graph.node} >= {"Reshape", "Conv"}
    assert first_layer(model).preprocessing[0].startswith("Reshape")


def test_dynamic_batch_keeps_the_batch_dependent_shape_arithmetic(tmp_path):
    """x.view(x.size(0), -1): Shape(x)[0] depends on the batch and stays; the rest folds; the first layer
    is read at batch 1; sessions and the gradient graph run batched."""
    b = GraphBuilder(np.random.default_rng(0))
    size = b.node("Unsqueeze", [b.node("Gather", [b.node("Shape", ["x"]), b.const(np.array(0, np.int64))], axis=0), _int64(b, [0])])
    minus_one = b.node("Sub", [_int64(b, [0]), b.node("Cast", [b.const(np.array([1.0], np.float32))], to=TensorProto.INT64)])
    t = b.node("Reshape", ["x", b.node("Concat", [size, minus_one], axis=0)])
    path = _model(b, t, tmp_path, input_shape=("N", 2, 3, 3), conv=False)
    model = load_model(path)
    ops = [n.op_type for n in model.proto.graph.node]
    assert "Shape" in ops and "Sub" not in ops and "Cast" not in ops  # -1 folded, the batch size kept
    layer = first_layer(model)
    assert layer.preprocessing[0].startswith("Reshape") and layer.n_inputs == 18
    x = np.random.default_rng(1).normal(size=(4, 2, 3, 3)).astype(np.float32)
    (logits,) = model.session().run(None, {"x": x})
    assert logits.shape == (4, 2)
    provider = provider_for(model, layer.post_name, "logit")
    assert provider.name == "gradient-graph" and provider.batched


def test_a_constant_of_unknown_size_is_left_to_onnxruntime(tmp_path):
    """NonZero's output size is known only after it runs: it is not evaluated at load time, and the
    reader then names the operand it needed as computed at run time."""
    b = GraphBuilder(np.random.default_rng(0))
    nonzero = b.node("NonZero", [b.const(np.ones((2, 2), np.float32))])
    offset = b.node("Cast", [b.node("ReduceMin", [nonzero], keepdims=0)], to=TensorProto.FLOAT)
    model = load_model(_model(b, b.node("Add", ["x", offset]), tmp_path))
    assert {"NonZero", "ReduceMin", "Cast"} <= {n.op_type for n in model.proto.graph.node}
    with pytest.raises(UnsupportedModelError, match="pads|offset|second operand.*only known at run time"):
        first_layer(model)


def test_unfoldable_models_load_unchanged(tmp_path):
    b = GraphBuilder(np.random.default_rng(0))
    model = load_model(_model(b, b.node("Identity", ["x"]), tmp_path))
    assert model.folding.folded_nodes == 0 and not model.folding.checked


def test_a_declared_dynamic_batch_fixed_inside_the_graph_still_loads(tmp_path, capfd):
    """EfficientNet-style: input [N, ...] but a Reshape to [1, -1]; the batch-2 check is skipped, batch 1 checked."""
    b = GraphBuilder(np.random.default_rng(0))
    t = b.node("Reshape", ["x", b.node("Concat", [_int64(b, [1]), _int64(b, [-1])], axis=0)])
    model = load_model(_model(b, t, tmp_path, input_shape=("N", 2, 3, 3), conv=False))
    assert model.batch_dynamic and model.folding.checked
    assert first_layer(model).n_inputs == 18
    assert capfd.readouterr().err == ""  # onnxruntime's own log line of the failed batch-2 run is silenced


def test_a_huge_declared_input_is_refused_before_the_onnxruntime_check_allocates_it(tmp_path, capsys):
    b = GraphBuilder(np.random.default_rng(0))
    t = b.node("Add", ["x", b.node("Mul", [b.const(np.float32(2.0)), b.const(np.float32(3.0))])])
    _refused(capsys, _model(b, t, tmp_path, input_shape=(1, 2, 100000, 100000)), "'x' of shape [1, 2, 100000, 100000]", "the limit is")

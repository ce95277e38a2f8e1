"""The one graph walk every cut uses: producers back from a tensor, subgraph reads included."""

from onnx import TensorProto, helper

from smugir.graph_walk import ancestors, descendants


def _graph_with_if():
    """c = If(cond) then (x + b) else x; d = Relu(a): the branch reads b, which no input of If names."""
    then = helper.make_graph([helper.make_node("Add", ["x", "b"], ["t"])], "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("If", ["cond"], ["c"], then_branch=then, else_branch=other),
        helper.make_node("Relu", ["a"], ["d"]),
    ]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("a", "x")]
    inputs.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
    return helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)])


def test_ancestors_follow_the_tensors_a_subgraph_reads():
    found = ancestors(_graph_with_if(), ["c"])
    assert {"c", "cond", "x", "b", "a"} <= found and "d" not in found


def test_stop_at_and_descend_end_the_walk_there():
    graph = _graph_with_if()
    assert "a" not in ancestors(graph, ["c"], stop_at={"b"})
    assert "a" not in ancestors(graph, ["c"], descend=lambda node: node.op_type != "Relu")
    assert "b" in ancestors(graph, ["c"], stop_at={"b"})


def test_descendants_include_what_subgraphs_compute_from_the_tensor():
    assert descendants(_graph_with_if(), "a") == {"a", "b", "c", "d"}

"""Memory estimated before it is spent (issue 21 item 8): a few-hundred-byte Conv whose attributes
(pads of a million, many channels) make its tensors huge is refused under `--max-memory` before
anything that size is allocated, measured as the peak resident memory of a fresh `smug` process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

PEAK_LIMIT_MB = 450  # imports and onnxruntime take about 120 MB; the refused allocations would take gigabytes

MEASURE = """
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "smugir", *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
"""


def _conv(path: Path, pads: list[int], channels: int) -> Path:
    nodes = [helper.make_node("Conv", ["x", "w"], ["pre"], pads=pads, name="conv"), helper.make_node("Relu", ["pre"], ["h"], name="relu"),
             helper.make_node("ReduceMean", ["h"], ["m"], axes=[1, 2, 3], keepdims=0, name="mean"),
             helper.make_node("Unsqueeze", ["m", "axis"], ["m1"], name="unsqueeze"),
             helper.make_node("Concat", ["m1", "m1"], ["logits"], axis=1, name="concat")]
    inits = [numpy_helper.from_array(np.ones((channels, 1, 1, 1), np.float32), "w"), numpy_helper.from_array(np.array([1], np.int64), "axis")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    assert path.stat().st_size < 1000
    return path


@pytest.mark.parametrize("pads, channels", [([1_000_000, 0, 0, 0], 1), ([100_000, 0, 0, 0], 64), ([1_000_000, 1_000_000, 0, 0], 1)])
def test_huge_conv_attributes_refused_before_allocating(tmp_path: Path, pads: list[int], channels: int) -> None:
    model = _conv(tmp_path / "conv.onnx", pads, channels)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((1, 1, 4, 4)).astype(np.float32))
    done = subprocess.run([sys.executable, "-c", MEASURE, "explain", str(model), str(tmp_path / "x.npy"), "--max-memory", "1G",
                           "--out", str(tmp_path / "out"), "--no-html"], capture_output=True, text=True, timeout=300)
    code, peak_mb = map(int, done.stdout.split())
    assert code == 2 and len(done.stderr.strip().splitlines()) == 1 and "over the memory limit" in done.stderr, done.stderr
    assert peak_mb < PEAK_LIMIT_MB, (peak_mb, done.stderr)
    assert not (tmp_path / "out").exists()
